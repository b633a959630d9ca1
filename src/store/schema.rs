//! The portable schema shared by both backends: ids and JSON as `Text`, times as `Timestamp`
//! (UTC, without zone).

diesel::table! {
    /// API keys; only an argon2id hash of each secret is stored.
    api_keys (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        secret_hash -> Text,
        created_at -> Timestamp,
        created_by -> Nullable<Text>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Deployment-wide secrets (the root secret), wrapped by a master key.
    key_material (name) {
        name -> Text,
        master_key_id -> Text,
        wrapped -> Binary,
        created_at -> Timestamp,
        epoch -> Nullable<BigInt>,
    }
}

diesel::table! {
    key_epochs (epoch) {
        epoch -> BigInt,
        key_check -> Text,
        started_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        destroyed_at -> Nullable<Timestamp>,
        rewrap_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Subjects: the app's subject_id only as a blind index and a ciphertext.
    subjects (id) {
        id -> Text,
        subject_index -> Text,
        subject_id_ct -> Binary,
        identifiers_ct -> Text,
        traits_ct -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    /// One wrapped data key per subject.
    data_keys (subject_pk) {
        subject_pk -> Text,
        key_id -> Text,
        master_key_id -> Text,
        wrapped -> Binary,
        epoch -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Blind indexes of subjects' e-mail addresses and phone numbers.
    subject_identifiers (subject_pk, kind) {
        subject_pk -> Text,
        kind -> Text,
        blind_index -> Text,
    }
}

diesel::table! {
    /// The anonymous ids linked to a person (identity resolution).
    subject_aliases (alias_index) {
        alias_index -> Text,
        subject_pk -> Text,
        alias_ct -> Binary,
        linked_at -> Timestamp,
    }
}

diesel::table! {
    /// People merged into another without moving their rows: the member keeps its id, data key
    /// and interactions; the person is the one reads, counts and erasure resolve it to.
    subject_members (member_pk) {
        member_pk -> Text,
        person_pk -> Text,
        merged_at -> Timestamp,
    }
}

diesel::table! {
    /// Segmentable traits, filterable.
    subject_traits (subject_pk, name) {
        subject_pk -> Text,
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    /// Interactions; `data_ct` maps field names to ciphertexts.
    interactions (id) {
        id -> Text,
        subject_pk -> Text,
        client_index -> Text,
        client_id_ct -> Binary,
        interaction_type -> Text,
        channel -> Text,
        occurred_at -> Timestamp,
        recorded_at -> Timestamp,
        purposes -> Text,
        data_ct -> Text,
        recorded_by -> Text,
    }
}

diesel::table! {
    /// The purposes each interaction was accepted for.
    interaction_purposes (interaction_pk, purpose) {
        interaction_pk -> Text,
        subject_pk -> Text,
        purpose -> Text,
        occurred_at -> Timestamp,
        interaction_type -> Text,
        channel -> Text,
    }
}

diesel::table! {
    /// Master key rotations.
    master_key_rotations (id) {
        id -> Text,
        from_key_id -> Text,
        to_key_id -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        rewrapped -> BigInt,
    }
}

diesel::table! {
    /// The append-only consent ledger.
    consent_records (id) {
        id -> Text,
        subject_pk -> Text,
        record_index -> Text,
        sequence -> BigInt,
        purpose -> Text,
        status -> Text,
        notice_id -> Nullable<Text>,
        notice_version -> Nullable<Text>,
        source -> Text,
        method -> Text,
        evidence_ct -> Text,
        recorded_at -> Timestamp,
        recorded_by -> Text,
        notice_language -> Nullable<Text>,
        notice_sha256 -> Nullable<Text>,
        merged_from -> Nullable<Text>,
    }
}

diesel::table! {
    /// The latest consent statement per subject and purpose.
    consent_current (subject_pk, purpose) {
        subject_pk -> Text,
        purpose -> Text,
        status -> Text,
        sequence -> BigInt,
        since -> Timestamp,
        record_id -> Text,
    }
}

diesel::table! {
    /// The population index's change feed (migration 000021). Declared for the rows code
    /// writes; read with each backend's own SQL (`store::population_feed`), which also knows
    /// PostgreSQL's `txid` column.
    population_changes (id) {
        id -> BigInt,
        subject_pk -> Text,
        interaction_pk -> Nullable<Text>,
    }
}

diesel::table! {
    /// Standing objections (Art. 21).
    objections (subject_pk, purpose) {
        subject_pk -> Text,
        purpose -> Text,
        since -> Timestamp,
        recorded_by -> Text,
    }
}

diesel::table! {
    /// Standing restrictions of processing (Art. 18).
    restrictions (subject_pk) {
        subject_pk -> Text,
        since -> Timestamp,
        recorded_by -> Text,
    }
}

diesel::table! {
    /// The audit log: a hash chain of entries, appended only.
    audit_log (seq) {
        seq -> BigInt,
        at -> Timestamp,
        actor_key_id -> Nullable<Text>,
        role -> Nullable<Text>,
        action -> Text,
        target -> Nullable<Text>,
        purposes -> Text,
        legal_bases -> Text,
        subjects -> Text,
        categories -> Text,
        records -> BigInt,
        decision -> Text,
        reason -> Nullable<Text>,
        policy_hash -> Text,
        request_id -> Nullable<Text>,
        hash -> Text,
    }
}

diesel::table! {
    /// Which audit entries name which person (by pseudonym).
    audit_subjects (subject_key, seq) {
        subject_key -> BigInt,
        seq -> BigInt,
    }
}

diesel::table! {
    /// The audit chain's head (one row): the last sequence number and hash.
    audit_head (id) {
        id -> Integer,
        seq -> BigInt,
        hash -> Text,
    }
}

diesel::table! {
    /// Signed checkpoints of the audit chain.
    audit_checkpoints (id) {
        id -> Text,
        size -> BigInt,
        head_hash -> Text,
        signed_at -> Timestamp,
        key_id -> Text,
        signature -> Text,
    }
}

diesel::table! {
    /// Tombstones of erased people: no identifier, only proof of the erasure.
    erasures (id) {
        id -> Text,
        pseudonym -> Text,
        erased_at -> Timestamp,
        erased_by -> Nullable<Text>,
        counts -> Text,
        receipt_sha256 -> Text,
    }
}

diesel::table! {
    /// Subject ids (by blind index) whose ingestion is blocked after an erasure.
    suppressions (subject_index) {
        subject_index -> Text,
        pseudonym -> Text,
        since -> Timestamp,
        recorded_by -> Nullable<Text>,
    }
}

diesel::table! {
    /// Data-subject requests and their deadlines; the person only as a blind index and sealed.
    subject_requests (id) {
        id -> Text,
        kind -> Text,
        regulation -> Text,
        status -> Text,
        identity_kind -> Text,
        identity_index -> Nullable<Text>,
        identity_ct -> Nullable<Text>,
        pseudonym -> Nullable<Text>,
        purposes -> Text,
        changes_ct -> Nullable<Text>,
        received_at -> Timestamp,
        due_at -> Timestamp,
        extended_at -> Nullable<Timestamp>,
        extension_reason_ct -> Nullable<Text>,
        verified_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        rejected_at -> Nullable<Timestamp>,
        rejection_reason_ct -> Nullable<Text>,
        result -> Nullable<Text>,
        created_by -> Nullable<Text>,
        updated_at -> Timestamp,
        key_id -> Nullable<Text>,
        key_master_key_id -> Nullable<Text>,
        key_epoch -> Nullable<BigInt>,
        key_wrapped -> Nullable<Binary>,
        receipt_ct -> Nullable<Text>,
        receipt_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Saved segments: a filter evaluated for a purpose at read time.
    segments (id) {
        id -> Text,
        name -> Text,
        purpose -> Text,
        filter -> Text,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// Counts revealed per API key, for the differencing guard.
    segment_answers (id) {
        id -> Text,
        key_id -> Text,
        purpose -> Text,
        filter_sha256 -> Text,
        size -> BigInt,
        sketch -> Text,
        answered_at -> Timestamp,
        outcome -> Text,
    }
}

diesel::table! {
    /// What each purpose's insights spent of the day's privacy budget.
    insight_budget (purpose, day) {
        purpose -> Text,
        day -> Text,
        epsilon_micros -> BigInt,
        delta_picos -> BigInt,
    }
}

diesel::table! {
    /// Insight answers released, per purpose, day and question.
    insight_releases (purpose, day, question_sha256) {
        purpose -> Text,
        day -> Text,
        question_sha256 -> Text,
        answer -> Text,
        epsilon_micros -> BigInt,
        delta_picos -> BigInt,
        released_at -> Timestamp,
    }
}

diesel::table! {
    /// OpenDSR requests received from controllers, mapped onto `subject_requests`.
    opendsr_requests (subject_request_id) {
        subject_request_id -> Text,
        request_id -> Text,
        controller_id -> Text,
        body_sha256 -> Text,
        callback_urls -> Text,
        base_url -> Text,
        received_at -> Timestamp,
        announced_status -> Text,
    }
}

diesel::table! {
    /// Signed status callbacks to controllers, kept until delivered.
    opendsr_callbacks (id) {
        id -> Text,
        subject_request_id -> Text,
        url -> Text,
        body -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        failed_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// The processor's development signing identity.
    opendsr_identity (name) {
        name -> Text,
        certificate_pem -> Text,
        private_key_ct -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// What erasures kept under a legal hold: one key per erasure, wrapped by the master key.
    legal_holds (erasure_id) {
        erasure_id -> Text,
        pseudonym -> Text,
        key_id -> Text,
        master_key_id -> Text,
        epoch -> Nullable<BigInt>,
        wrapped -> Binary,
        held_since -> Timestamp,
    }
}

diesel::table! {
    /// Interactions an erasure kept for a purpose with a legal hold, under the hold's key.
    held_interactions (id) {
        id -> Text,
        erasure_id -> Text,
        interaction_type -> Text,
        channel -> Text,
        occurred_at -> Timestamp,
        purposes -> Text,
        data_ct -> Text,
        held_until -> Timestamp,
    }
}

diesel::joinable!(data_keys -> subjects (subject_pk));
diesel::joinable!(held_interactions -> legal_holds (erasure_id));
diesel::joinable!(subject_identifiers -> subjects (subject_pk));
diesel::joinable!(subject_traits -> subjects (subject_pk));
diesel::joinable!(subject_aliases -> subjects (subject_pk));
diesel::joinable!(interactions -> subjects (subject_pk));
diesel::joinable!(interaction_purposes -> interactions (interaction_pk));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    key_material,
    key_epochs,
    subjects,
    data_keys,
    subject_identifiers,
    subject_traits,
    subject_aliases,
    subject_members,
    interactions,
    interaction_purposes,
    master_key_rotations,
    consent_records,
    consent_current,
    objections,
    restrictions,
    audit_log,
    audit_head,
    audit_subjects,
    audit_checkpoints,
    erasures,
    suppressions,
    subject_requests,
    opendsr_requests,
    opendsr_callbacks,
    opendsr_identity,
    segments,
    segment_answers,
    insight_budget,
    insight_releases,
    legal_holds,
    held_interactions,
);
