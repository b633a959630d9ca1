//! A cache of unwrapped data keys, bounded in size and in age, so hot subjects are not
//! unwrapped on every request and no key stays in memory long after its last use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::crypto::DataKey;

/// How many data keys are kept at most.
pub const DATA_KEY_CACHE_CAPACITY: usize = 100_000;
/// How long an unwrapped data key is kept after it was unwrapped.
pub const DATA_KEY_CACHE_TTL: Duration = Duration::from_secs(300);

/// Unwrapped data keys by subject.
pub struct DataKeyCache {
    entries: Mutex<HashMap<String, (Arc<DataKey>, Instant)>>,
    capacity: usize,
    ttl: Duration,
}

impl DataKeyCache {
    /// An empty cache with the default bounds.
    pub fn new() -> DataKeyCache {
        DataKeyCache::with_bounds(DATA_KEY_CACHE_CAPACITY, DATA_KEY_CACHE_TTL)
    }

    /// An empty cache with these bounds.
    pub(crate) fn with_bounds(capacity: usize, ttl: Duration) -> DataKeyCache {
        DataKeyCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
            ttl,
        }
    }

    /// The subject's key, if cached and not too old.
    pub(crate) fn get(&self, subject_pk: &str) -> Option<Arc<DataKey>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(subject_pk) {
            Some((key, at)) if at.elapsed() < self.ttl => Some(key.clone()),
            Some(_) => {
                entries.remove(subject_pk);
                None
            }
            None => None,
        }
    }

    /// Remembers a subject's key. When full, expired keys go first, then the oldest half.
    pub fn insert(&self, subject_pk: &str, key: Arc<DataKey>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(subject_pk) {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                let mut ages: Vec<Instant> = entries.values().map(|(_, at)| *at).collect();
                ages.sort_unstable();
                let cutoff = ages[ages.len() / 2];
                entries.retain(|_, (_, at)| *at > cutoff);
            }
        }
        entries.insert(subject_pk.to_owned(), (key, Instant::now()));
    }

    /// Drops a subject's key (its subject was erased).
    pub(crate) fn forget(&self, subject_pk: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(subject_pk);
    }

    /// How many keys are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Default for DataKeyCache {
    fn default() -> Self {
        DataKeyCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Secret;

    fn key() -> Arc<DataKey> {
        Arc::new(DataKey::new(DataKey::generate_id(), &Secret::generate()))
    }

    #[test]
    fn the_cache_stays_within_its_size_and_age() {
        let cache = DataKeyCache::with_bounds(4, Duration::from_millis(50));
        for index in 0..10 {
            cache.insert(&format!("s{index}"), key());
            assert!(cache.len() <= 4);
        }
        assert!(cache.get("s9").is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("s9").is_none(), "an old key is not served");
    }
}
