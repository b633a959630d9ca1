//! The population index: each process keeps, in memory, what a population query needs to know
//! of every person — whether they are a person (not erased, not merged into another), their
//! legal basis for each purpose of the policy (rule 2, decided from their current statements,
//! objections and restriction), their segmentable traits, and the time, type, channel and
//! purposes of each of their interactions (rule 3), members' included — and answers a count by
//! one pass over it: tens of milliseconds at a million people, where the same count in the
//! database probes hundreds of thousands of keys (`docs/benchmarks.md`).
//!
//! It is never behind what a count may see. Triggers write a feed of the changes in the
//! transaction of every change to those tables (`store::population_feed`, migration 000021);
//! before each count the index reads, in a snapshot, the feed since its last read, reads again
//! the state of every subject the feed names, then answers from memory: a withdrawal, an
//! objection, a restriction, an erasure or a merge committed before the request is in the
//! answer. A process that has not built its index yet, or fell behind the feed's retention,
//! answers from the database (`store::segments`) meanwhile; both give the same counts (the
//! brute-force test runs against both).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use crate::insights::tally::{Cell, Tally};
use crate::insights::{GroupKey, Question, TimeAxis};
use crate::policy::{ConsentStatement, Policy, PopulationRule, PurposeId, SubjectState};
use crate::population::{Filter, InteractionCondition};
use crate::store::population_feed::{self as feed, Change, Position, PurposeRow, Statement};
use crate::store::{DbConnection, StoreError};

/// The periodic job that builds a process's index and keeps it close to the feed.
pub const JOB: &str = "population_index";

/// Rows read per page while building.
const PAGE: i64 = 20_000;
/// An index whose last catch-up is older than this starts again from the tables (the feed
/// keeps what was read for twice as long).
const MAX_LAG: Duration = Duration::from_secs(300);
/// The most feed rows one catch-up reads; further behind, the index starts again.
const MAX_CHANGES: i64 = 500_000;
/// The most purposes the policy may declare for the index to serve it (one bit each).
const MAX_PURPOSES: usize = 32;

/// One interaction usable for at least one purpose of the policy: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// When it occurred: Unix seconds, clamped to `u32` (a look-back starts after 1970 and
    /// before 2106, so the clamp never changes a comparison).
    at: u32,
    /// Its type, channel and purposes, as one of the replica's combinations (`Combo`).
    combo: u16,
}

/// What interactions share: a type, a channel and the policy's purposes they were collected for
/// (one bit each). A population has few such combinations, so an interaction names its own by
/// number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Combo {
    kind: u32,
    channel: u32,
    purposes: u32,
}

fn seconds(at: NaiveDateTime) -> u32 {
    at.and_utc().timestamp().clamp(0, i64::from(u32::MAX)) as u32
}

/// Where a person's interactions are in the arena.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    start: u32,
    len: u32,
}

/// Strings numbered in the order they are first met.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn get(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Every string, by its number.
    fn names(&self) -> Vec<&str> {
        let mut names = vec![""; self.ids.len()];
        for (name, id) in &self.ids {
            names[*id as usize] = name;
        }
        names
    }

    fn intern(&mut self, text: &str) -> u32 {
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(text.to_owned(), id);
        id
    }
}

/// A segmentable field: each person's value, interned (0: none).
struct Column {
    values: Interner,
    by_slot: Vec<u32>,
}

/// A subject id as a map key: ids of up to 23 bytes (the service's are 22) inline, longer ones
/// in a map of their own.
type Key = [u8; 24];

fn key(pk: &str) -> Option<Key> {
    let bytes = pk.as_bytes();
    if bytes.len() >= 24 {
        return None;
    }
    let mut key = [0u8; 24];
    key[0] = bytes.len() as u8;
    key[1..=bytes.len()].copy_from_slice(bytes);
    Some(key)
}

/// Why an index cannot serve this policy or data (it is then not used).
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error("more than {MAX_PURPOSES} purposes")]
    Purposes,
    #[error("more than 65,536 combinations of interaction type, channel and purposes")]
    Combos,
}

/// The state of one person, as read for a catch-up.
#[derive(Default)]
struct PersonState {
    traits: Vec<(String, String)>,
    statements: Vec<(String, bool, i64)>,
    objections: Vec<String>,
    restricted: bool,
}

/// The population in memory (see the module's documentation).
struct Replica {
    /// The policy; its purposes, in order, are the bits of `eligible` and of an entry's purposes.
    policy: Arc<Policy>,
    /// A purpose's bit.
    purpose_bits: HashMap<String, u32>,
    /// Segmentable fields, by name.
    fields: HashMap<String, usize>,
    columns: Vec<Column>,
    kinds: Interner,
    channels: Interner,
    /// The combinations met, by number.
    combos: Vec<Combo>,
    combo_ids: HashMap<Combo, u16>,
    /// The ids of the people found by the build, sorted: a person's slot is their place here
    /// (a slot stays its person's: ids are never reused).
    sorted: Vec<Key>,
    /// The slots of people who came later (and of ids too long for a key).
    later: HashMap<String, u32>,
    /// Slots of `later` that were released.
    free: Vec<u32>,
    /// Whether the slot holds a person.
    alive: Vec<bool>,
    /// The first byte of the person's id (the differencing guard's bucket).
    bucket: Vec<u8>,
    /// The purposes the person has a legal basis for, one bit each.
    eligible: Vec<u32>,
    /// Where the person's interactions (their members' included) are in `arena`.
    runs: Vec<Run>,
    /// Every person's interactions, a run per person.
    arena: Vec<Entry>,
    /// Entries of `arena` no run points at any more (moved or released).
    garbage: usize,
    /// Where the feed was read to.
    position: Position,
    caught_up: Instant,
}

impl Replica {
    fn new(policy: &Arc<Policy>, position: Position) -> Result<Replica, Unusable> {
        let purposes: Vec<_> = policy.purposes().collect();
        if purposes.len() > MAX_PURPOSES {
            return Err(Unusable::Purposes);
        }
        let fields: Vec<_> = policy.fields().filter(|f| f.segmentable).collect();
        Ok(Replica {
            policy: policy.clone(),
            purpose_bits: purposes
                .iter()
                .enumerate()
                .map(|(bit, p)| (p.id.to_string(), bit as u32))
                .collect(),
            fields: fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.as_str().to_owned(), i))
                .collect(),
            columns: fields
                .iter()
                .map(|_| Column {
                    values: Interner::default(),
                    by_slot: Vec::new(),
                })
                .collect(),
            kinds: Interner::default(),
            channels: Interner::default(),
            combos: Vec::new(),
            combo_ids: HashMap::new(),
            sorted: Vec::new(),
            later: HashMap::new(),
            free: Vec::new(),
            alive: Vec::new(),
            bucket: Vec::new(),
            eligible: Vec::new(),
            runs: Vec::new(),
            arena: Vec::new(),
            garbage: 0,
            position,
            caught_up: Instant::now(),
        })
    }

    fn slot_of(&self, pk: &str) -> Option<u32> {
        key(pk)
            .and_then(|key| self.sorted.binary_search(&key).ok())
            .map(|slot| slot as u32)
            .or_else(|| self.later.get(pk).copied())
    }

    /// A new slot (for no one yet).
    fn push_slot(&mut self) -> u32 {
        let slot = self.alive.len() as u32;
        self.alive.push(false);
        self.bucket.push(0);
        self.eligible.push(0);
        self.runs.push(Run::default());
        for column in &mut self.columns {
            column.by_slot.push(0);
        }
        slot
    }

    /// The person's slot, taken if they have none.
    fn slot_for(&mut self, pk: &str) -> u32 {
        let slot = match self.slot_of(pk) {
            Some(slot) => slot,
            None => {
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => self.push_slot(),
                };
                self.later.insert(pk.to_owned(), slot);
                slot
            }
        };
        let s = slot as usize;
        self.alive[s] = true;
        self.bucket[s] = pk.as_bytes().first().copied().unwrap_or(0);
        slot
    }

    /// Forgets a subject that is no longer a person (erased, or merged into another).
    fn release(&mut self, pk: &str) {
        if let Some(slot) = self.slot_of(pk) {
            self.clear(slot as usize);
            if self.later.remove(pk).is_some() {
                self.free.push(slot);
            }
        }
    }

    fn clear(&mut self, s: usize) {
        self.alive[s] = false;
        self.eligible[s] = 0;
        self.set_run(s, &[]);
        for column in &mut self.columns {
            column.by_slot[s] = 0;
        }
    }

    /// Gives the slot these interactions, at the end of the arena (the old run is garbage,
    /// collected when it is half the arena).
    fn set_run(&mut self, s: usize, entries: &[Entry]) {
        let old = self.runs[s];
        self.garbage += old.len as usize;
        self.runs[s] = Run {
            start: self.arena.len() as u32,
            len: entries.len() as u32,
        };
        self.arena.extend_from_slice(entries);
        self.compact_if_half_garbage();
    }

    /// Adds interactions to the slot's run (moved to the end of the arena).
    fn extend_run(&mut self, s: usize, entries: &[Entry]) {
        let old = self.runs[s];
        let start = self.arena.len();
        self.arena
            .extend_from_within(old.start as usize..(old.start + old.len) as usize);
        self.arena.extend_from_slice(entries);
        self.garbage += old.len as usize;
        self.runs[s] = Run {
            start: start as u32,
            len: (self.arena.len() - start) as u32,
        };
        self.compact_if_half_garbage();
    }

    fn compact_if_half_garbage(&mut self) {
        if self.garbage < 1024 || self.garbage * 2 < self.arena.len() {
            return;
        }
        for run in self.runs.iter_mut().filter(|run| run.len == 0) {
            run.start = 0;
        }
        let mut order: Vec<u32> = (0..self.runs.len() as u32)
            .filter(|s| self.runs[*s as usize].len > 0)
            .collect();
        order.sort_unstable_by_key(|s| self.runs[*s as usize].start);
        let mut cursor = 0usize;
        for s in order {
            let run = &mut self.runs[s as usize];
            let (start, len) = (run.start as usize, run.len as usize);
            self.arena.copy_within(start..start + len, cursor);
            run.start = cursor as u32;
            cursor += len;
        }
        self.arena.truncate(cursor);
        self.arena.shrink_to_fit();
        self.garbage = 0;
    }

    fn run(&self, s: usize) -> &[Entry] {
        let run = self.runs[s];
        &self.arena[run.start as usize..(run.start + run.len) as usize]
    }

    fn people(&self) -> usize {
        self.alive.iter().filter(|alive| **alive).count()
    }

    fn set_trait(&mut self, s: usize, name: &str, value: &str) {
        if let Some(&field) = self.fields.get(name) {
            let column = &mut self.columns[field];
            column.by_slot[s] = column.values.intern(value) + 1;
        }
    }

    /// Rule 2 for every purpose of the policy, decided by the policy engine
    /// (`Policy::legal_basis`) from the person's current statements, objections and
    /// restriction: one bit per purpose.
    fn eligibility(
        &self,
        statements: &[(String, bool, i64)],
        objections: &[String],
        restricted: bool,
    ) -> u32 {
        let state = SubjectState {
            consents: statements
                .iter()
                .filter_map(|(purpose, granted, sequence)| {
                    Some(ConsentStatement {
                        purpose: PurposeId::parse(purpose).ok()?,
                        granted: *granted,
                        sequence: *sequence,
                    })
                })
                .collect(),
            objections: objections
                .iter()
                .filter_map(|purpose| PurposeId::parse(purpose).ok())
                .collect(),
            restricted,
        };
        self.policy
            .purposes()
            .enumerate()
            .filter(|(_, purpose)| self.policy.legal_basis(purpose, &state).is_ok())
            .fold(0, |bits, (bit, _)| bits | 1 << bit)
    }

    /// An interaction's entry from its purpose rows (`None`: usable for no purpose of the
    /// policy).
    fn entry(&mut self, rows: &[PurposeRow]) -> Result<Option<Entry>, Unusable> {
        let purposes = rows
            .iter()
            .filter_map(|row| self.purpose_bits.get(&row.purpose))
            .fold(0u32, |bits, bit| bits | 1 << bit);
        if purposes == 0 {
            return Ok(None);
        }
        let first = &rows[0];
        let combo = Combo {
            kind: self.kinds.intern(&first.interaction_type),
            channel: self.channels.intern(&first.channel),
            purposes,
        };
        let combo = match self.combo_ids.get(&combo) {
            Some(id) => *id,
            None => {
                let id = u16::try_from(self.combos.len()).map_err(|_| Unusable::Combos)?;
                self.combos.push(combo);
                self.combo_ids.insert(combo, id);
                id
            }
        };
        Ok(Some(Entry {
            at: seconds(first.occurred_at),
            combo,
        }))
    }

    /// The entries of purpose rows sorted by interaction, grouped by their owner's person.
    fn entries_by_person<'r>(
        &mut self,
        rows: &'r [PurposeRow],
        person_of: impl Fn(&'r str) -> Option<&'r str>,
    ) -> Result<HashMap<&'r str, Vec<Entry>>, Unusable> {
        let mut by_person: HashMap<&str, Vec<Entry>> = HashMap::new();
        for group in rows.chunk_by(|a, b| a.interaction_pk == b.interaction_pk) {
            let Some(person) = person_of(&group[0].subject_pk) else {
                continue;
            };
            if let Some(entry) = self.entry(group)? {
                by_person.entry(person).or_default().push(entry);
            }
        }
        Ok(by_person)
    }

    /// Reads the whole population in one snapshot.
    fn build(
        conn: &mut DbConnection,
        policy: &Arc<Policy>,
    ) -> Result<Result<Replica, Unusable>, StoreError> {
        feed::snapshot(conn, |conn, position| {
            let mut replica = match Replica::new(policy, position) {
                Ok(replica) => replica,
                Err(unusable) => return Ok(Err(unusable)),
            };
            let person_of: HashMap<String, String> =
                feed::memberships(conn, None)?.into_iter().collect();
            let mut after = String::new();
            let mut long = Vec::new();
            loop {
                let page = feed::subjects_page(conn, &after, PAGE)?;
                let Some(last) = page.last() else { break };
                after = last.clone();
                for pk in page {
                    if person_of.contains_key(&pk) {
                        continue;
                    }
                    match key(&pk) {
                        Some(key) => replica.sorted.push(key),
                        None => long.push(pk),
                    }
                }
            }
            replica.sorted.sort_unstable();
            replica.sorted.shrink_to_fit();
            for s in 0..replica.sorted.len() {
                replica.push_slot();
                replica.alive[s] = true;
                replica.bucket[s] = replica.sorted[s][1];
            }
            for pk in long {
                replica.slot_for(&pk);
            }
            let mut after = (String::new(), String::new());
            loop {
                let page = feed::traits_page(conn, (&after.0, &after.1), PAGE)?;
                let Some(last) = page.last() else { break };
                after = (last.0.clone(), last.1.clone());
                for (pk, name, value) in &page {
                    if let Some(slot) = replica.slot_of(pk) {
                        replica.set_trait(slot as usize, name, value);
                    }
                }
            }
            let mut objections: HashMap<String, Vec<String>> = HashMap::new();
            for (pk, purpose) in feed::objections_of(conn, None)? {
                objections.entry(pk).or_default().push(purpose);
            }
            let restricted: HashSet<String> = feed::restricted(conn, None)?.into_iter().collect();
            // Most people neither object nor are restricted: without statements, their bits are
            // the same.
            let base = replica.eligibility(&[], &[], false);
            for bits in &mut replica.eligible {
                *bits = base;
            }
            let none = Vec::new();
            for pk in objections.keys().chain(restricted.iter()) {
                if let Some(slot) = replica.slot_of(pk) {
                    replica.eligible[slot as usize] = replica.eligibility(
                        &[],
                        objections.get(pk).unwrap_or(&none),
                        restricted.contains(pk),
                    );
                }
            }
            let mut after = (String::new(), String::new());
            let mut pending: Vec<Statement> = Vec::new();
            loop {
                let page = feed::statements_page(conn, (&after.0, &after.1), PAGE)?;
                let done = page.is_empty();
                if let Some(last) = page.last() {
                    after = (last.0.clone(), last.1.clone());
                }
                pending.extend(page);
                let ready = complete_groups(&mut pending, done, |a, b| a.0 == b.0);
                for group in ready.chunk_by(|a, b| a.0 == b.0) {
                    let pk = &group[0].0;
                    if let Some(slot) = replica.slot_of(pk) {
                        let statements: Vec<_> =
                            group.iter().map(|s| (s.1.clone(), s.2, s.3)).collect();
                        replica.eligible[slot as usize] = replica.eligibility(
                            &statements,
                            objections.get(pk).unwrap_or(&none),
                            restricted.contains(pk),
                        );
                    }
                }
                if done {
                    break;
                }
            }
            // Two passes over the purpose rows: the first counts each person's interactions, so
            // that the arena is allocated once at its size and filled in place by the second
            // (holding every entry with its person until they could be sorted would cost half
            // as much memory again as the arena).
            for pass in 0..2 {
                let mut after = (String::new(), String::new());
                let mut carried: Vec<PurposeRow> = Vec::new();
                loop {
                    let page = feed::purpose_rows_page(conn, (&after.0, &after.1), PAGE)?;
                    let done = page.is_empty();
                    if let Some(last) = page.last() {
                        after = (last.interaction_pk.clone(), last.purpose.clone());
                    }
                    carried.extend(page);
                    let ready = complete_groups(&mut carried, done, |a, b| {
                        a.interaction_pk == b.interaction_pk
                    });
                    let entries = match replica.entries_by_person(&ready, |owner| {
                        Some(person_of.get(owner).map_or(owner, String::as_str))
                    }) {
                        Ok(entries) => entries,
                        Err(unusable) => return Ok(Err(unusable)),
                    };
                    for (person, entries) in entries {
                        let Some(slot) = replica.slot_of(person) else {
                            continue;
                        };
                        let run = &mut replica.runs[slot as usize];
                        if pass == 1 {
                            let at = (run.start + run.len) as usize;
                            replica.arena[at..at + entries.len()].copy_from_slice(&entries);
                        }
                        run.len += entries.len() as u32;
                    }
                    if done {
                        break;
                    }
                }
                if pass == 0 {
                    let mut start = 0u32;
                    for run in &mut replica.runs {
                        let count = run.len;
                        *run = Run { start, len: 0 };
                        start += count;
                    }
                    replica.arena = vec![Entry { at: 0, combo: 0 }; start as usize];
                }
            }
            replica.caught_up = Instant::now();
            Ok(Ok(replica))
        })
    }

    /// Reads the feed since the last catch-up and the state of every subject it names, in the
    /// snapshot `position` describes, then applies them (nothing changes if a read fails).
    /// `Ok(false)`: too far behind (the caller starts again from the tables).
    fn catch_up(
        &mut self,
        conn: &mut DbConnection,
        position: Position,
    ) -> Result<Result<bool, Unusable>, StoreError> {
        let Some(changes) = feed::changes_since(conn, &self.position, MAX_CHANGES)? else {
            return Ok(Ok(false));
        };
        let mut dirty: HashSet<String> = HashSet::new();
        let mut added: Vec<(String, String)> = Vec::new();
        for change in changes {
            match change {
                Change::Subject(pk) => {
                    dirty.insert(pk);
                }
                Change::Added(pk, interaction) => added.push((pk, interaction)),
            }
        }
        // A new interaction of somebody who is not a person here (new, or a member): read again.
        for (pk, _) in &added {
            if self.slot_of(pk).is_none() {
                dirty.insert(pk.clone());
            }
        }
        let mut new_interactions: Vec<&str> = added
            .iter()
            .filter(|(pk, _)| !dirty.contains(pk))
            .map(|(_, interaction)| interaction.as_str())
            .collect();
        new_interactions.sort_unstable();
        new_interactions.dedup();
        // Read in this snapshot: an interaction deleted since is not there (and its deletion
        // named its subject, read again whole).
        let mut added = feed::purpose_rows_by_interaction(conn, &new_interactions)?;
        added.retain(|row| !dirty.contains(&row.subject_pk));
        let states = if dirty.is_empty() {
            None
        } else {
            Some(read_states(conn, &dirty)?)
        };
        if let Some(states) = states {
            if let Err(unusable) = self.apply(&dirty, states) {
                return Ok(Err(unusable));
            }
        }
        let by_person = match self.entries_by_person(&added, Some) {
            Ok(by_person) => by_person,
            Err(unusable) => return Ok(Err(unusable)),
        };
        for (person, new) in by_person {
            if let Some(slot) = self.slot_of(person) {
                self.extend_run(slot as usize, &new);
            }
        }
        self.position = position;
        self.caught_up = Instant::now();
        Ok(Ok(true))
    }

    fn apply(&mut self, dirty: &HashSet<String>, states: States) -> Result<(), Unusable> {
        for pk in dirty {
            if !states.persons.contains_key(pk) {
                self.release(pk);
            }
        }
        for member in &states.members {
            self.release(member);
        }
        let runs = self.entries_by_person(&states.rows, |owner| {
            states.person_of.get(owner).map(String::as_str)
        })?;
        for (pk, state) in &states.persons {
            let slot = self.slot_for(pk) as usize;
            self.clear(slot);
            self.alive[slot] = true;
            for (name, value) in &state.traits {
                self.set_trait(slot, name, value);
            }
            self.eligible[slot] =
                self.eligibility(&state.statements, &state.objections, state.restricted);
        }
        for (person, run) in runs {
            if let Some(slot) = self.slot_of(person) {
                self.set_run(slot as usize, &run);
            }
        }
        Ok(())
    }

    /// How many people with a legal basis for the purpose whose bit is `bit` match `node`, by
    /// bucket.
    fn count(&self, bit: u32, node: &Node) -> Vec<(String, i64)> {
        let mut buckets = [0i64; 256];
        let mask = 1u32 << bit;
        for s in 0..self.alive.len() {
            if self.alive[s] && self.eligible[s] & mask != 0 && self.matches(node, s) {
                buckets[usize::from(self.bucket[s])] += 1;
            }
        }
        buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(b, n)| ((b as u8 as char).to_string(), *n))
            .collect()
    }

    fn matches(&self, node: &Node, s: usize) -> bool {
        match node {
            Node::All(children) => children.iter().all(|child| self.matches(child, s)),
            Node::Any(children) => children.iter().any(|child| self.matches(child, s)),
            Node::Not(child) => !self.matches(child, s),
            Node::Never => false,
            Node::Trait { column, values } => {
                let value = self.columns[*column].by_slot[s];
                value != 0 && values.contains(&value)
            }
            Node::Interactions {
                combos,
                since,
                at_least,
            } => {
                let mut found = 0;
                for entry in self.run(s) {
                    if entry.at >= *since && combos[usize::from(entry.combo)] {
                        found += 1;
                        if found >= *at_least {
                            return true;
                        }
                    }
                }
                false
            }
        }
    }

    /// The filter over this index's numbering.
    fn compile(&self, filter: &Filter, rule: &PopulationRule, now: NaiveDateTime) -> Node {
        match filter {
            Filter::All(children) => Node::All(
                children
                    .iter()
                    .map(|c| self.compile(c, rule, now))
                    .collect(),
            ),
            Filter::Any(children) => Node::Any(
                children
                    .iter()
                    .map(|c| self.compile(c, rule, now))
                    .collect(),
            ),
            Filter::Not(child) => Node::Not(Box::new(self.compile(child, rule, now))),
            Filter::Trait { field, values } => match self.fields.get(field.as_str()) {
                Some(&column) => Node::Trait {
                    column,
                    values: values
                        .iter()
                        .filter_map(|v| self.columns[column].values.get(v).map(|id| id + 1))
                        .collect(),
                },
                None => Node::Never,
            },
            Filter::Interactions(condition) => self.interactions(condition, rule, now),
        }
    }

    fn interactions(
        &self,
        condition: &InteractionCondition,
        rule: &PopulationRule,
        now: NaiveDateTime,
    ) -> Node {
        let purposes = rule
            .tags
            .iter()
            .filter_map(|tag| self.purpose_bits.get(tag.as_str()))
            .fold(0u32, |bits, bit| bits | 1 << bit);
        let token = |interner: &Interner, text: &Option<String>| match text {
            None => Some(None),
            Some(text) => interner.get(text).map(Some),
        };
        match (
            token(&self.kinds, &condition.kind),
            token(&self.channels, &condition.channel),
        ) {
            (Some(kind), Some(channel)) if purposes != 0 => Node::Interactions {
                // Which combinations the leaf accepts, decided once per question.
                combos: self
                    .combos
                    .iter()
                    .map(|combo| {
                        combo.purposes & purposes != 0
                            && kind.is_none_or(|k| combo.kind == k)
                            && channel.is_none_or(|c| combo.channel == c)
                    })
                    .collect(),
                since: condition.within_days.map_or(0, |days| {
                    seconds(now - chrono::Duration::days(i64::from(days)))
                }),
                at_least: condition.at_least,
            },
            // A type or channel nobody has, or a purpose no interaction may serve.
            _ => Node::Never,
        }
    }
}

impl Replica {
    /// A question in this replica's numbering.
    fn plan(&self, question: &Question, rule: &PopulationRule, now: NaiveDateTime) -> Option<Plan> {
        let bit = *self.purpose_bits.get(question.purpose.as_str())?;
        let tags = rule
            .tags
            .iter()
            .filter_map(|tag| self.purpose_bits.get(tag.as_str()))
            .fold(0u32, |bits, bit| bits | 1 << bit);
        let dim = |key: Option<&GroupKey>| match key {
            None => Dim::None,
            Some(GroupKey::Time(_)) => Dim::Time,
            Some(GroupKey::Type) => Dim::Kind,
            Some(GroupKey::Channel) => Dim::Channel,
            Some(GroupKey::Trait(field)) => self
                .fields
                .get(field.as_str())
                .map_or(Dim::Never, |column| Dim::Trait(*column)),
        };
        let clamp = |seconds: i64| seconds.clamp(0, i64::from(u32::MAX)) as u32;
        Some(Plan {
            bit,
            node: match &question.filter {
                Some(filter) => self.compile(filter, rule, now),
                None => Node::All(Vec::new()),
            },
            usable: self.combos.iter().map(|c| c.purposes & tags != 0).collect(),
            start: clamp(question.start_seconds()),
            end: clamp(question.end_seconds()),
            axis: question.time_axis(),
            dims: [
                dim(question.group_by.first()),
                dim(question.group_by.get(1)),
            ],
        })
    }

    /// Adds the person in slot `s` to the tally, if they count for the question.
    fn tally_slot(&self, plan: &Plan, s: usize, tallies: &mut Tallies) {
        if !self.alive[s] || self.eligible[s] & (1 << plan.bit) == 0 || !self.matches(&plan.node, s)
        {
            return;
        }
        let mut traits = [0u32; 2];
        for (i, dim) in plan.dims.iter().enumerate() {
            match dim {
                Dim::Never => return,
                Dim::Trait(column) => {
                    traits[i] = self.columns[*column].by_slot[s];
                    // People without a value are not in any group of the trait.
                    if traits[i] == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
        for entry in self.run(s) {
            if entry.at < plan.start
                || entry.at >= plan.end
                || !plan.usable[usize::from(entry.combo)]
            {
                continue;
            }
            let combo = self.combos[usize::from(entry.combo)];
            let value = |i: usize| match plan.dims[i] {
                Dim::None | Dim::Never => 0,
                Dim::Time => plan
                    .axis
                    .as_ref()
                    .map_or(0, |axis| axis.bucket(i64::from(entry.at))),
                Dim::Kind => combo.kind,
                Dim::Channel => combo.channel,
                Dim::Trait(_) => traits[i],
            };
            let cell = [value(0), value(1)];
            tallies.cells.push(cell);
            // The values from the data, without the time bucket: what partition selection
            // counts (a person once per value).
            tallies.values.push(std::array::from_fn(|i| {
                if matches!(plan.dims[i], Dim::Time) {
                    0
                } else {
                    cell[i]
                }
            }));
        }
        tallies.cells.end_person();
        tallies.values.end_person();
    }

    /// Both tallies in words (the values' keys without the time bucket).
    fn labelled_totals(&self, plan: &Plan, tallies: Tallies) -> InsightTotals {
        InsightTotals {
            cells: self.labelled(plan, tallies.cells.into_totals(), true),
            values: self.labelled(plan, tallies.values.into_totals(), false),
        }
    }

    /// Totals with each cell's key in words, in the order of the question's keys (the time
    /// bucket's only `with_time`).
    fn labelled(
        &self,
        plan: &Plan,
        totals: HashMap<Cell, i64>,
        with_time: bool,
    ) -> Vec<(Vec<String>, i64)> {
        let (kinds, channels) = (self.kinds.names(), self.channels.names());
        let traits: Vec<Vec<&str>> = self.columns.iter().map(|c| c.values.names()).collect();
        let label = |dim: Dim, value: u32| -> Option<String> {
            Some(match dim {
                Dim::None | Dim::Never => return None,
                Dim::Time if !with_time => return None,
                Dim::Time => plan.axis.as_ref()?.label(value),
                Dim::Kind => kinds[value as usize].to_owned(),
                Dim::Channel => channels[value as usize].to_owned(),
                Dim::Trait(column) => traits[column][value as usize - 1].to_owned(),
            })
        };
        totals
            .into_iter()
            .map(|(cell, n)| {
                let key = (0..2)
                    .filter_map(|i| label(plan.dims[i], cell[i]))
                    .collect();
                (key, n)
            })
            .collect()
    }
}

/// How a cell's coordinate is read.
#[derive(Debug, Clone, Copy)]
enum Dim {
    /// No key.
    None,
    /// A trait this replica does not keep: nobody is in any group.
    Never,
    Time,
    Kind,
    Channel,
    /// A trait's column.
    Trait(usize),
}

/// A question compiled against a replica.
struct Plan {
    bit: u32,
    node: Node,
    /// By combination number: do interactions of it serve the purpose?
    usable: Vec<bool>,
    start: u32,
    end: u32,
    axis: Option<TimeAxis>,
    dims: [Dim; 2],
}

/// The exact, bounded totals of an insight question, each cell keyed by its values in words.
pub(crate) struct InsightTotals {
    /// Per cell, keys in the question's order.
    pub(crate) cells: Vec<(Vec<String>, i64)>,
    /// Per value of the keys that come from the data (the time bucket left out): how many
    /// people have it, each counting in at most `Question::selection_bound` of them — what
    /// partition selection thresholds.
    pub(crate) values: Vec<(Vec<String>, i64)>,
}

/// The two tallies a pass feeds.
struct Tallies {
    cells: Tally,
    values: Tally,
}

impl Tallies {
    fn new(question: &Question, seed: u64) -> Tallies {
        Tallies {
            cells: Tally::new(question.bound, seed),
            values: Tally::new(
                question.selection_bound(),
                seed.rotate_left(17) ^ 0x5DEE_CE66,
            ),
        }
    }
}

/// The totals of `question` computed from the database, for a process without an index: the
/// people with a legal basis who match the filter are read from the database in pages (rule 2
/// and the filter in its query), in one snapshot; each page's state is read as a catch-up reads it, and the same
/// code as the index's tallies them. `None` when the data cannot be numbered (more than 65,536
/// combinations of type, channel and purposes).
pub(crate) fn insight_totals_from_database(
    conn: &mut DbConnection,
    policy: &Arc<Policy>,
    rule: &PopulationRule,
    question: &Question,
    now: NaiveDateTime,
    seed: u64,
) -> Result<Option<InsightTotals>, StoreError> {
    // One snapshot for every page.
    crate::store::export::snapshot(conn, |conn| {
        let Ok(mut replica) = Replica::new(policy, Position::Sqlite { after_id: 0 }) else {
            return Ok(None);
        };
        let mut tallies = Tallies::new(question, seed);
        let mut after: Option<String> = None;
        loop {
            let page = crate::store::segments::members_page(
                conn,
                rule,
                question.filter.as_ref(),
                now,
                after.as_deref(),
                PAGE,
            )?;
            let Some(last) = page.last() else { break };
            after = Some(last.clone());
            let named: HashSet<String> = page.into_iter().collect();
            let states = read_states(conn, &named)?;
            let persons: Vec<String> = states.persons.keys().cloned().collect();
            if replica.apply(&named, states).is_err() {
                return Ok(None);
            }
            let Some(compiled) = replica.plan(question, rule, now) else {
                return Ok(None);
            };
            for pk in persons.iter().filter(|pk| named.contains(*pk)) {
                if let Some(slot) = replica.slot_of(pk) {
                    replica.tally_slot(&compiled, slot as usize, &mut tallies);
                }
            }
            for pk in &persons {
                replica.release(pk);
            }
        }
        // Labelled with the numbering the pages built up.
        Ok(replica
            .plan(question, rule, now)
            .map(|plan| replica.labelled_totals(&plan, tallies)))
    })
}

/// A filter compiled against a replica.
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Never,
    Trait {
        column: usize,
        values: Vec<u32>,
    },
    Interactions {
        /// By combination number: does an interaction of it count?
        combos: Vec<bool>,
        since: u32,
        at_least: u32,
    },
}

/// Takes from `carried` (rows in key order, read page by page) the rows whose group is complete:
/// all of them once the last page was read (`done`), otherwise all but the last row's group,
/// which may continue on the next page.
fn complete_groups<T>(carried: &mut Vec<T>, done: bool, same: impl Fn(&T, &T) -> bool) -> Vec<T> {
    let keep_from = match carried.last() {
        Some(last) if !done => carried
            .iter()
            .position(|row| same(row, last))
            .unwrap_or(carried.len()),
        _ => carried.len(),
    };
    carried.drain(..keep_from).collect()
}

/// What a catch-up read about the subjects the feed named.
struct States {
    /// The people among them (and the people their members belong to), with their state.
    persons: HashMap<String, PersonState>,
    /// Subjects that are members of another.
    members: Vec<String>,
    /// The person of each owner of interactions read (themselves, or the person of a member).
    person_of: HashMap<String, String>,
    /// The purpose rows of the people and their members, sorted by interaction.
    rows: Vec<PurposeRow>,
}

fn read_states(conn: &mut DbConnection, dirty: &HashSet<String>) -> Result<States, StoreError> {
    let named: Vec<&str> = dirty.iter().map(String::as_str).collect();
    let mut person_of: HashMap<String, String> = HashMap::new();
    for (member, person) in feed::memberships(conn, Some(&named))? {
        person_of.insert(member, person);
    }
    // The people concerned: those named who are not members, and the person of each member named.
    let mut candidates: HashSet<String> = dirty
        .iter()
        .filter(|pk| !person_of.contains_key(*pk))
        .cloned()
        .collect();
    candidates.extend(person_of.values().cloned());
    let candidate_list: Vec<&str> = candidates.iter().map(String::as_str).collect();
    // Every member of those people (theirs count as the person's).
    for (member, person) in feed::memberships(conn, Some(&candidate_list))? {
        person_of.insert(member, person);
    }
    let existing: HashSet<String> = feed::existing(conn, &candidate_list)?.into_iter().collect();
    let persons: Vec<&str> = candidate_list
        .iter()
        .copied()
        .filter(|pk| existing.contains(*pk) && !person_of.contains_key(*pk))
        .collect();
    let mut states: HashMap<String, PersonState> = persons
        .iter()
        .map(|pk| ((*pk).to_owned(), PersonState::default()))
        .collect();
    for (pk, name, value) in feed::traits_of(conn, &persons)? {
        if let Some(state) = states.get_mut(&pk) {
            state.traits.push((name, value));
        }
    }
    for (pk, purpose, granted, sequence) in feed::statements_of(conn, &persons)? {
        if let Some(state) = states.get_mut(&pk) {
            state.statements.push((purpose, granted, sequence));
        }
    }
    for (pk, purpose) in feed::objections_of(conn, Some(&persons))? {
        if let Some(state) = states.get_mut(&pk) {
            state.objections.push(purpose);
        }
    }
    for pk in feed::restricted(conn, Some(&persons))? {
        if let Some(state) = states.get_mut(&pk) {
            state.restricted = true;
        }
    }
    let members: Vec<String> = person_of
        .iter()
        .filter(|(_, person)| states.contains_key(*person))
        .map(|(member, _)| member.clone())
        .collect();
    let mut owner_of: HashMap<String, String> = persons
        .iter()
        .map(|pk| ((*pk).to_owned(), (*pk).to_owned()))
        .collect();
    for member in &members {
        owner_of.insert(member.clone(), person_of[member].clone());
    }
    let owners: Vec<&str> = owner_of.keys().map(String::as_str).collect();
    let rows = feed::purpose_rows_of(conn, &owners)?;
    let all_members = person_of.keys().cloned().collect();
    Ok(States {
        persons: states,
        members: all_members,
        person_of: owner_of,
        rows,
    })
}

/// Lowers the calling thread's scheduling priority to the lowest (Linux: a thread's own `nice`).
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: `setpriority` on this thread's own id changes only its scheduling priority.
    unsafe {
        let thread = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, 19);
    }
}

/// Gives the memory the build read through and freed back to the system (glibc keeps freed
/// heap pages of a thread's arena otherwise, and they count as the process's resident memory).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free memory of the allocator's own heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Where a process's index is.
enum Stage {
    /// Not built (or dropped: too far behind, or unusable); counts go to the database.
    Empty,
    /// Being built; counts go to the database meanwhile.
    Building,
    /// Answering.
    Ready(Box<Replica>),
}

/// A request to the background worker: bring the index up to date with a connection of this
/// database, and say how it went.
type Refresh = (
    crate::store::Database,
    tokio::sync::oneshot::Sender<Result<(), StoreError>>,
);

/// A process's population index (see the module's documentation).
pub(crate) struct PopulationIndex {
    enabled: bool,
    policy: Arc<Policy>,
    stage: Mutex<Stage>,
    /// The worker thread that builds and refreshes the index between counts (started at the
    /// first refresh).
    worker: Mutex<Option<std::sync::mpsc::Sender<Refresh>>>,
    answers: IntCounterVec,
    people: IntGauge,
}

impl PopulationIndex {
    /// An index for `policy`, not built yet; `enabled: false` keeps every count in the
    /// database.
    pub(crate) fn new(policy: Arc<Policy>, enabled: bool, registry: &Registry) -> PopulationIndex {
        let answers = IntCounterVec::new(
            Opts::new(
                "custodia_population_counts_total",
                "Population counts answered, by where (index: the process's population index; database)",
            ),
            &["from"],
        )
        .expect("metric options are valid");
        let people = IntGauge::new(
            "custodia_population_index_people",
            "People in this process's population index (0: not built)",
        )
        .expect("metric options are valid");
        for metric in [
            Box::new(answers.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(people.clone()),
        ] {
            if let Err(error) = registry.register(metric) {
                tracing::warn!(error = %error, "population index metrics not registered");
            }
        }
        PopulationIndex {
            enabled,
            policy,
            stage: Mutex::new(Stage::Empty),
            worker: Mutex::new(None),
            answers,
            people,
        }
    }

    fn stage(&self) -> std::sync::MutexGuard<'_, Stage> {
        self.stage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`refresh`](Self::refresh) on the index's own worker thread, which runs at the lowest
    /// scheduling priority (`nice` 19): building and keeping up with the feed between counts
    /// takes only CPU time that requests leave idle, so that ingest keeps its throughput (a
    /// count brings the index up to date itself, at its own priority). The periodic job calls
    /// this and waits for it.
    pub(crate) async fn refresh_in_background(
        self: &Arc<Self>,
        db: crate::store::Database,
    ) -> Result<(), StoreError> {
        let (reply, done) = tokio::sync::oneshot::channel();
        let sent = {
            let mut worker = self
                .worker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let sender = worker.get_or_insert_with(|| {
                let (sender, requests) = std::sync::mpsc::channel::<Refresh>();
                let index = Arc::downgrade(self);
                std::thread::Builder::new()
                    .name("population-index".into())
                    .spawn(move || {
                        lowest_priority();
                        while let Ok((db, reply)) = requests.recv() {
                            let Some(index) = index.upgrade() else { break };
                            let refreshed = db
                                .connection()
                                .and_then(|mut conn| index.refresh(&mut conn));
                            let _ = reply.send(refreshed);
                        }
                    })
                    .expect("a thread can be started");
                sender
            });
            sender.send((db, reply)).is_ok()
        };
        if !sent {
            *self
                .worker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            return Err(StoreError::Cancelled);
        }
        done.await.unwrap_or(Err(StoreError::Cancelled))
    }

    /// Builds the index when it has none, or brings it up to date; the periodic job calls it
    /// (the first run builds). Counts are answered from the database while it builds.
    pub(crate) fn refresh(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        if !self.enabled {
            return Ok(());
        }
        {
            let mut stage = self.stage();
            match &mut *stage {
                Stage::Ready(replica) => {
                    let done = self.catch_up(replica, conn)?;
                    if !done {
                        *stage = Stage::Empty;
                        self.people.set(0);
                    }
                    return Ok(());
                }
                Stage::Building => return Ok(()),
                Stage::Empty => *stage = Stage::Building,
            }
        }
        let started = Instant::now();
        let built = Replica::build(conn, &self.policy);
        let mut stage = self.stage();
        match built {
            Ok(Ok(replica)) => {
                let people = replica.people();
                self.people.set(people as i64);
                tracing::info!(
                    people,
                    seconds = started.elapsed().as_secs_f64(),
                    "population index built"
                );
                *stage = Stage::Ready(Box::new(replica));
                drop(stage);
                release_freed_memory();
                Ok(())
            }
            Ok(Err(unusable)) => {
                tracing::warn!(reason = %unusable, "population index not used: counts are answered by the database");
                *stage = Stage::Empty;
                Ok(())
            }
            Err(error) => {
                *stage = Stage::Empty;
                Err(error)
            }
        }
    }

    /// Brings `replica` up to date in a new snapshot; `false` when it cannot be (too far
    /// behind, or no longer usable).
    fn catch_up(&self, replica: &mut Replica, conn: &mut DbConnection) -> Result<bool, StoreError> {
        if replica.caught_up.elapsed() > MAX_LAG {
            tracing::warn!("population index fell behind the change feed: it is built again");
            return Ok(false);
        }
        match feed::snapshot(conn, |conn, position| replica.catch_up(conn, position))? {
            Ok(true) => {
                self.people.set(replica.people() as i64);
                Ok(true)
            }
            Ok(false) => {
                tracing::warn!("population index fell behind the change feed: it is built again");
                Ok(false)
            }
            Err(unusable) => {
                tracing::warn!(reason = %unusable, "population index dropped: counts are answered by the database");
                Ok(false)
            }
        }
    }

    /// The exact, bounded totals of `question` (rule `rule`, interactions of its filter looked
    /// back from `now`), from the index brought up to date first; `None` when the index cannot
    /// answer (the caller asks the database).
    pub(crate) fn insight_totals(
        &self,
        conn: &mut DbConnection,
        rule: &PopulationRule,
        question: &Question,
        now: NaiveDateTime,
        seed: u64,
    ) -> Result<Option<InsightTotals>, StoreError> {
        self.answer_current(conn, |replica| {
            let plan = replica.plan(question, rule, now)?;
            let mut tallies = Tallies::new(question, seed);
            for s in 0..replica.alive.len() {
                replica.tally_slot(&plan, s, &mut tallies);
            }
            Some(replica.labelled_totals(&plan, tallies))
        })
    }

    /// The count by bucket of the people with a legal basis under `rule` (the rule of the
    /// policy's purpose `purpose`) who match `filter`, interactions looked back from `now`
    /// (whole seconds: an interaction's time is kept to the second), from the index brought up
    /// to date first; `None` when the index cannot answer (the caller asks the database).
    pub(crate) fn count(
        &self,
        conn: &mut DbConnection,
        purpose: &str,
        rule: &PopulationRule,
        filter: &Filter,
        now: NaiveDateTime,
    ) -> Result<Option<Vec<(String, i64)>>, StoreError> {
        let counts = self.answer_current(conn, |replica| {
            let &bit = replica.purpose_bits.get(purpose)?;
            let node = replica.compile(filter, rule, now);
            Some(replica.count(bit, &node))
        })?;
        let from = if counts.is_some() {
            "index"
        } else {
            "database"
        };
        self.answers.with_label_values(&[from]).inc();
        Ok(counts)
    }

    /// `answer` from the index brought up to date first (in the index's lock); `None` when the
    /// index is not built, could not be brought up to date (it is dropped, to be built again),
    /// or `answer` cannot answer.
    fn answer_current<T>(
        &self,
        conn: &mut DbConnection,
        answer: impl FnOnce(&Replica) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let mut stage = self.stage();
        let Stage::Ready(replica) = &mut *stage else {
            return Ok(None);
        };
        if !self.catch_up(replica, conn)? {
            *stage = Stage::Empty;
            self.people.set(0);
            return Ok(None);
        }
        Ok(answer(replica))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica() -> Replica {
        let policy = crate::policy::load_dir(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies"
        )))
        .unwrap();
        Replica::new(&Arc::new(policy), Position::Sqlite { after_id: 0 }).unwrap()
    }

    fn entry(at: u32) -> Entry {
        Entry { at, combo: 0 }
    }

    #[test]
    fn runs_survive_moves_releases_and_compaction() {
        let mut replica = replica();
        let mut expected: HashMap<String, Vec<u32>> = HashMap::new();
        for round in 0..200u32 {
            for person in 0..50u32 {
                let pk = format!("person-{person}");
                let slot = replica.slot_for(&pk) as usize;
                let times = expected.entry(pk.clone()).or_default();
                match (round + person) % 7 {
                    // Read again whole.
                    0 => {
                        *times = (0..person % 5).map(|n| round * 10 + n).collect();
                        let run: Vec<Entry> = times.iter().map(|at| entry(*at)).collect();
                        replica.set_run(slot, &run);
                    }
                    // Erased (or merged away).
                    6 if person % 3 == 0 => {
                        replica.release(&pk);
                        expected.remove(&pk);
                    }
                    // A new interaction.
                    _ => {
                        times.push(round);
                        replica.extend_run(slot, &[entry(round)]);
                    }
                }
            }
            assert!(replica.garbage * 2 < replica.arena.len() || replica.garbage < 1024);
        }
        for person in 0..50u32 {
            let pk = format!("person-{person}");
            match (expected.get(&pk), replica.slot_of(&pk)) {
                (Some(times), Some(slot)) => {
                    let run: Vec<u32> = replica.run(slot as usize).iter().map(|e| e.at).collect();
                    assert_eq!(&run, times, "{pk}");
                    assert!(replica.alive[slot as usize]);
                }
                (None, None) => {}
                (None, Some(slot)) => assert!(!replica.alive[slot as usize], "{pk}"),
                (Some(_), None) => panic!("{pk} lost its slot"),
            }
        }
        // Released slots are taken again by newcomers.
        let before = replica.alive.len();
        replica.slot_for("newcomer");
        assert_eq!(replica.alive.len(), before);
    }

    #[test]
    fn slots_of_the_build_are_found_by_their_sorted_ids() {
        let mut replica = replica();
        let mut ids: Vec<String> = (0..1000)
            .map(|n| format!("{:x}", n * 7919 % 4096))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        replica.sorted = ids.iter().map(|id| key(id).unwrap()).collect();
        replica.sorted.sort_unstable();
        for _ in 0..replica.sorted.len() {
            replica.push_slot();
        }
        for id in &ids {
            let slot = replica.slot_of(id).unwrap() as usize;
            assert_eq!(replica.sorted[slot], key(id).unwrap());
        }
        assert_eq!(replica.slot_of("not-there"), None);
        let long = "x".repeat(40);
        let slot = replica.slot_for(&long);
        assert_eq!(replica.slot_of(&long), Some(slot));
    }
}
