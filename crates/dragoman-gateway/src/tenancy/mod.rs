//! Virtual keys, teams and users: an in-memory directory the request path reads without
//! waiting (one atomic load and a hash lookup), kept in the store and followed from it, so a
//! change made on one instance reaches the others within a poll.
//!
//! The directory is copy-on-write: a change builds a new one and swaps it in, so readers never
//! lock. Each entity's [`meter::Meter`] lives beside the directory, keyed by id, and outlives
//! every reload of the entity's limits.

pub mod api;
pub mod docs;
pub mod meter;
pub mod shared;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use dragoman_store::{Doc, GroupBy, Store};

use docs::{KeyDoc, TeamDoc, UserDoc};
use meter::{Caps, Meter};

/// How often the directory follows the store's changes.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// Each poll re-reads this much before the last one: a change another instance committed
/// late, or stamped with a clock slightly behind ours, is still seen.
const POLL_OVERLAP_MS: i64 = 5_000;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// SHA-256 of a key, the only form in which keys are kept or compared.
pub fn hash_key(key: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let v = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        out[i] = v;
    }
    Some(out)
}

/// An entity of the directory with its limits made into caps and its meter attached.
#[derive(Debug)]
pub struct Entry<D> {
    pub doc: D,
    pub caps: Caps,
    pub meter: Arc<Meter>,
    /// How records and refusals name it, made once here rather than per request.
    pub label: String,
}

pub type KeyEntry = Entry<KeyDoc>;
pub type TeamEntry = Entry<TeamDoc>;
pub type UserEntry = Entry<UserDoc>;

/// A snapshot of every key, team and user.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    pub keys: HashMap<[u8; 32], Arc<KeyEntry>>,
    pub teams: HashMap<String, Arc<TeamEntry>>,
    pub users: HashMap<String, Arc<UserEntry>>,
}

/// Whose meter: kind and id (a model group is appended for per-model limits).
type MeterId = (&'static str, String);

pub struct Tenancy {
    dir: ArcSwap<Directory>,
    meters: Mutex<HashMap<MeterId, Arc<Meter>>>,
    store: Option<Store>,
    /// One change at a time on this instance: each is a read-modify-write of a document.
    writes: tokio::sync::Mutex<()>,
    /// One directory rebuild at a time (the key API's and the poller's), so neither swaps
    /// out the other's change.
    applying: tokio::sync::Mutex<()>,
    /// The start of the last poll that succeeded (Unix ms).
    polled_ms: AtomicI64,
    /// Redis, when limits and budgets hold across instances.
    shared: Option<Arc<shared::Shared>>,
}

/// The kinds of document, as the store names them.
pub const KEY: &str = "key";
pub const TEAM: &str = "team";
pub const USER: &str = "user";

impl Tenancy {
    pub fn new(store: Option<Store>, shared: Option<Arc<shared::Shared>>) -> Tenancy {
        Tenancy {
            shared,
            dir: ArcSwap::from_pointee(Directory::default()),
            meters: Mutex::new(HashMap::new()),
            store,
            writes: tokio::sync::Mutex::new(()),
            applying: tokio::sync::Mutex::new(()),
            polled_ms: AtomicI64::new(0),
        }
    }

    pub fn directory(&self) -> arc_swap::Guard<Arc<Directory>> {
        self.dir.load()
    }

    pub fn shared(&self) -> Option<&Arc<shared::Shared>> {
        self.shared.as_ref()
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Whether any key exists (an empty directory lets auth skip hashing).
    pub fn has_keys(&self) -> bool {
        !self.dir.load().keys.is_empty()
    }

    /// The key a presented secret names, if any.
    pub fn key(&self, presented: &str) -> Option<Arc<KeyEntry>> {
        let dir = self.dir.load();
        if dir.keys.is_empty() {
            return None;
        }
        dir.keys.get(&hash_key(presented)).cloned()
    }

    pub fn key_by_token(&self, token: &str) -> Option<Arc<KeyEntry>> {
        let h = unhex(token)?;
        self.dir.load().keys.get(&h).cloned()
    }

    /// The meter of an entity, created (with its spend this period read from the store) the
    /// first time it is seen.
    async fn meter(&self, kind: &'static str, id: &str, caps: &Caps) -> Arc<Meter> {
        let key = (kind, id.to_owned());
        if let Some(m) = self.meters.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return m;
        }
        let period_start = period_start(caps, now_ms());
        let by = match kind {
            KEY => GroupBy::Key,
            TEAM => GroupBy::Team,
            _ => GroupBy::User,
        };
        let spent = match &self.store {
            Some(s) => s.spend(&[(by, id)], period_start).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, kind, "could not read spend from the store; counting from zero");
                0
            }),
            None => 0,
        };
        let fresh = Arc::new(Meter::with_spend(spent, period_start));
        match self.meters.lock() {
            Ok(mut m) => m.entry(key).or_insert(fresh).clone(),
            Err(_) => fresh,
        }
    }

    /// Creates a key's per-model meter with its spend this period on that model group read
    /// from the store, before any request needs it.
    async fn load_model_meter(&self, key_id: &str, group: &str, caps: &Caps) {
        let id = (KEY, format!("{key_id}\u{0}{group}"));
        if self.meters.lock().is_ok_and(|m| m.contains_key(&id)) {
            return;
        }
        let period_start = period_start(caps, now_ms());
        let spent = match &self.store {
            Some(s) => s
                .spend(
                    &[(GroupBy::Key, key_id), (GroupBy::Model, group)],
                    period_start,
                )
                .await
                .unwrap_or(0),
            None => 0,
        };
        if let Ok(mut m) = self.meters.lock() {
            m.entry(id)
                .or_insert_with(|| Arc::new(Meter::with_spend(spent, period_start)));
        }
    }

    /// The meter of a key's per-model limits (created by the directory for per-model budgets;
    /// rpm and tpm alone start empty).
    pub fn model_meter(&self, kind: &'static str, id: &str, group: &str) -> Arc<Meter> {
        let key = (kind, format!("{id}\u{0}{group}"));
        match self.meters.lock() {
            Ok(mut m) => m.entry(key).or_default().clone(),
            Err(_) => Arc::new(Meter::default()),
        }
    }

    /// Loads every document from the store: call before serving.
    pub async fn load(&self) -> Result<usize, String> {
        if let Some(s) = &self.shared {
            s.beat().await;
        }
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let started = now_ms();
        let docs = store.docs_since(0).await.map_err(|e| e.to_string())?;
        let n = docs.iter().filter(|d| !d.deleted).count();
        self.apply(docs).await;
        self.polled_ms.store(started, Ordering::Relaxed);
        Ok(n)
    }

    /// Follows the store's changes since the last poll.
    pub async fn poll(&self) -> Result<(), String> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let started = now_ms();
        let since = self.polled_ms.load(Ordering::Relaxed) - POLL_OVERLAP_MS;
        let docs = store.docs_since(since).await.map_err(|e| e.to_string())?;
        self.apply(docs).await;
        self.polled_ms.store(started, Ordering::Relaxed);
        Ok(())
    }

    /// Applies documents (from the store, or just written) to a new directory and swaps it in.
    /// A document older than the one held is skipped, so a poll never undoes a newer change.
    async fn apply(&self, docs: Vec<Doc>) {
        if docs.is_empty() {
            return;
        }
        let _one = self.applying.lock().await;
        let mut next: Option<Directory> = None;
        for doc in docs {
            let current = self.dir.load();
            let dir = next.get_or_insert_with(|| (**current).clone());
            match doc.kind.as_str() {
                KEY => {
                    let Some(h) = unhex(&doc.id) else { continue };
                    if dir
                        .keys
                        .get(&h)
                        .is_some_and(|e| e.doc.updated_at_ms > doc.updated_ms)
                    {
                        continue;
                    }
                    if doc.deleted {
                        dir.keys.remove(&h);
                        continue;
                    }
                    let Some(k) = parse::<KeyDoc>(&doc) else {
                        continue;
                    };
                    if dir.keys.get(&h).is_some_and(|e| e.doc == k) {
                        continue;
                    }
                    let caps = k.limits.caps(k.budget_anchor_ms);
                    // By the key's lasting id: a regenerated key keeps its meter and spend.
                    let meter = self.meter(KEY, &k.key_id, &caps).await;
                    for group in k.limits.model_max_budget.keys() {
                        if let Some(mc) = k.limits.model_caps(group, k.budget_anchor_ms) {
                            self.load_model_meter(&k.key_id, group, &mc).await;
                        }
                    }
                    dir.keys.insert(
                        h,
                        Arc::new(Entry {
                            label: k.label(),
                            doc: k,
                            caps,
                            meter,
                        }),
                    );
                }
                TEAM => {
                    if dir
                        .teams
                        .get(&doc.id)
                        .is_some_and(|e| e.doc.updated_at_ms > doc.updated_ms)
                    {
                        continue;
                    }
                    if doc.deleted {
                        dir.teams.remove(&doc.id);
                        continue;
                    }
                    let Some(t) = parse::<TeamDoc>(&doc) else {
                        continue;
                    };
                    if dir.teams.get(&doc.id).is_some_and(|e| e.doc == t) {
                        continue;
                    }
                    let caps = t.limits.caps(t.budget_anchor_ms);
                    let meter = self.meter(TEAM, &doc.id, &caps).await;
                    dir.teams.insert(
                        doc.id.clone(),
                        Arc::new(Entry {
                            label: t.label(),
                            doc: t,
                            caps,
                            meter,
                        }),
                    );
                }
                USER => {
                    if dir
                        .users
                        .get(&doc.id)
                        .is_some_and(|e| e.doc.updated_at_ms > doc.updated_ms)
                    {
                        continue;
                    }
                    if doc.deleted {
                        dir.users.remove(&doc.id);
                        continue;
                    }
                    let Some(u) = parse::<UserDoc>(&doc) else {
                        continue;
                    };
                    if dir.users.get(&doc.id).is_some_and(|e| e.doc == u) {
                        continue;
                    }
                    let caps = u.limits.caps(u.budget_anchor_ms);
                    let meter = self.meter(USER, &doc.id, &caps).await;
                    dir.users.insert(
                        doc.id.clone(),
                        Arc::new(Entry {
                            label: u.label(),
                            doc: u,
                            caps,
                            meter,
                        }),
                    );
                }
                other => {
                    tracing::warn!(kind = %crate::logsafe::Escaped(other), "unknown kind of tenancy document in the store; skipped");
                }
            }
        }
        if let Some(dir) = next {
            self.dir.store(Arc::new(dir));
        }
    }

    /// Writes one document to the store (when there is one), then to the directory.
    pub async fn write(
        &self,
        kind: &'static str,
        id: String,
        body: String,
        updated_ms: i64,
        deleted: bool,
    ) -> Result<(), String> {
        let doc = Doc {
            kind: kind.to_owned(),
            id,
            body,
            updated_ms,
            deleted,
        };
        if let Some(store) = &self.store {
            store.put_doc(&doc).await.map_err(|e| e.to_string())?;
        }
        self.apply(vec![doc]).await;
        Ok(())
    }

    /// Serialises the key API's changes on this instance.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.lock().await
    }

    /// Polls the store every [`POLL_EVERY`] for as long as the gateway lives.
    pub fn spawn_poller(self: &Arc<Self>) {
        if let Some(s) = &self.shared {
            s.spawn();
        }
        if self.store.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                tokio::time::sleep(POLL_EVERY).await;
                let Some(t) = weak.upgrade() else { return };
                match t.poll().await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("reading keys from the store again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot read keys from the store; serving the keys already known");
                    }
                    Err(_) => {}
                }
            }
        });
    }
}

/// Where the budget period `now` falls in began (0 for a budget that never resets).
pub fn period_start(caps: &Caps, now: i64) -> i64 {
    caps.period_ms.filter(|p| *p > 0).map_or(0, |p| {
        caps.anchor_ms + (now - caps.anchor_ms).div_euclid(p) * p
    })
}

fn parse<T: serde::de::DeserializeOwned>(doc: &Doc) -> Option<T> {
    match serde_json::from_str(&doc.body) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(kind = %doc.kind, error = %e, "unreadable tenancy document in the store; skipped");
            None
        }
    }
}
