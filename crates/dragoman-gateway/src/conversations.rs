//! Conversation state for the Responses API on any upstream: answered `/v1/responses` calls are
//! kept (the store's `responses` table, written off the request path; the most recent ones also
//! in memory, so the next turn never waits for the write), and a request naming
//! `previous_response_id` or carrying `item_reference` items is expanded into the whole
//! conversation it stands for before it is routed.
//!
//! Expansion works on the Responses JSON the client would have sent had it kept the history
//! itself: the chain's input items and output items (as the client saw them, reasoning carriers
//! included) in order, then the new input, with every `item_reference` replaced by its item. So
//! the rest of the path is unchanged: the expanded body is translated like any other. A chain
//! that an OpenAI Responses deployment produced and that is routed to that same deployment is
//! sent as it came (OpenAI resolves its own ids); anywhere else the expansion is sent.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use dragoman_model::ErrorKind;
use dragoman_store::{ResponseWriter, Store, StoredResponse};
use serde_json::{Value, json};

use crate::errors::GatewayError;
use crate::principal::Principal;

/// Responses kept in memory for their next turn.
const RECENT: usize = 4096;
/// The longest chain of `previous_response_id` followed.
const MAX_CHAIN: usize = 1000;

/// The owner a stored response is readable by: a virtual key's lasting id, or the master key
/// (which reads everything).
pub fn owner_of(p: &Principal) -> String {
    match p {
        Principal::Key(c) => c.key.doc.key_id.clone(),
        Principal::Master | Principal::Open => "master".into(),
    }
}

fn may_read(p: &Principal, owner: &str) -> bool {
    match p {
        Principal::Key(c) => c.key.doc.key_id == owner,
        Principal::Master | Principal::Open => true,
    }
}

#[derive(Default)]
struct Recent {
    by_id: HashMap<String, Arc<StoredResponse>>,
    items: HashMap<String, String>,
    order: VecDeque<String>,
}

pub struct Conversations {
    store: Option<Store>,
    writer: OnceLock<Option<ResponseWriter>>,
    recent: Mutex<Recent>,
    pub ttl: Duration,
}

/// A request expanded from stored state.
pub struct Expanded {
    /// The self-contained request: the history's items, then the new input.
    pub body: Bytes,
    /// The deployment that can take the original body as it is (its own ids), if one can.
    pub native: Option<String>,
    /// What the request names that this gateway does not hold (another server's ids): only a
    /// Responses deployment, given the original body, may resolve them; for any other it is a
    /// 404 in the Responses dialect.
    pub missing: Option<GatewayError>,
    /// The body is the client's own conversation, rewritten (no item of it made elsewhere):
    /// any Responses deployment takes it as it is.
    pub relay: bool,
}

impl Expanded {
    /// A request rewritten in place, with nothing taken from the store.
    pub fn rewritten(body: Bytes) -> Expanded {
        Expanded {
            body,
            native: None,
            missing: None,
            relay: true,
        }
    }
}

fn not_found(what: String, code: &str, param: &str) -> GatewayError {
    let mut e = GatewayError::client(ErrorKind::NotFound, what).with_status(404);
    e.body.code = Some(code.into());
    e.body.param = Some(param.into());
    e
}

fn now_ms() -> i64 {
    crate::tenancy::now_ms()
}

impl Conversations {
    pub fn new(store: Option<Store>, ttl: Duration) -> Conversations {
        Conversations {
            store,
            writer: OnceLock::new(),
            recent: Mutex::new(Recent::default()),
            ttl,
        }
    }

    /// Whether responses are kept at all (a gateway without a store keeps none).
    pub fn enabled(&self) -> bool {
        self.store.is_some()
    }

    fn writer(&self) -> Option<&ResponseWriter> {
        self.writer
            .get_or_init(|| {
                let store = self.store.clone()?;
                // Responses are far larger than usage records: a queue of thousands, not of
                // the usage writer's hundred thousand.
                let opts = dragoman_store::WriterOptions {
                    capacity: 4096,
                    ..dragoman_store::WriterOptions::default()
                };
                let (w, _task) = dragoman_store::spawn_response_writer(Arc::new(store), opts);
                Some(w)
            })
            .as_ref()
    }

    /// Keeps `r`: in memory at once, in the store through the writer.
    pub fn put(&self, r: StoredResponse) {
        if !self.enabled() {
            return;
        }
        let r = Arc::new(r);
        if let Ok(mut m) = self.recent.lock() {
            for id in item_ids(&r) {
                m.items.insert(id, r.id.clone());
            }
            if m.by_id.insert(r.id.clone(), r.clone()).is_none() {
                m.order.push_back(r.id.clone());
            }
            while m.order.len() > RECENT {
                if let Some(old) = m.order.pop_front()
                    && let Some(gone) = m.by_id.remove(&old)
                {
                    for id in item_ids(&gone) {
                        if m.items.get(&id) == Some(&old) {
                            m.items.remove(&id);
                        }
                    }
                }
            }
        }
        if let Some(w) = self.writer()
            && !w.try_send((*r).clone())
        {
            tracing::warn!(response_id = %r.id, "the response store's queue is full: this response is kept in memory only");
        }
    }

    /// A response readable by `p`, from memory or the store.
    pub async fn get(&self, id: &str, p: &Principal) -> Option<Arc<StoredResponse>> {
        let now = now_ms();
        let hit = self
            .recent
            .lock()
            .ok()
            .and_then(|m| m.by_id.get(id).cloned());
        let r = match hit {
            Some(r) => Some(r),
            None => match &self.store {
                Some(s) => s.get_response(id, now).await.ok().flatten().map(Arc::new),
                None => None,
            },
        }?;
        (r.expires_ms > now && may_read(p, &r.owner)).then_some(r)
    }

    /// An item of a stored response readable by `p`, with the response's deployment and
    /// upstream dialect.
    async fn item(&self, id: &str, p: &Principal) -> Option<(Value, Arc<StoredResponse>)> {
        let in_memory = self
            .recent
            .lock()
            .ok()
            .and_then(|m| m.items.get(id).and_then(|r| m.by_id.get(r).cloned()));
        let resp = match in_memory {
            Some(r) => r,
            None => {
                let (rid, _, _) = self.store.as_ref()?.find_item(id, now_ms()).await.ok()??;
                self.get(&rid, p).await?
            }
        };
        if resp.expires_ms <= now_ms() || !may_read(p, &resp.owner) {
            return None;
        }
        let item = resp
            .input_items
            .iter()
            .chain(resp.response["output"].as_array().into_iter().flatten())
            .find(|i| i["id"].as_str() == Some(id))?
            .clone();
        Some((item, resp))
    }

    /// Deletes a response readable by `p`; false when there is none, an error when the store
    /// could not delete it (never reported as done).
    pub async fn delete(&self, id: &str, p: &Principal) -> Result<bool, String> {
        if self.get(id, p).await.is_none() {
            return Ok(false);
        }
        if let Ok(mut m) = self.recent.lock()
            && let Some(gone) = m.by_id.remove(id)
        {
            m.order.retain(|x| x != id);
            for i in item_ids(&gone) {
                m.items.remove(&i);
            }
        }
        // It may still be in the writer's queue: delete what is stored now, and again once
        // the queue has had time to flush, so a late write cannot bring it back.
        if let Some(s) = &self.store {
            s.delete_response(id).await.map_err(|e| e.to_string())?;
            let (s, id) = (s.clone(), id.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = s.delete_response(&id).await;
            });
        }
        Ok(true)
    }

    /// Expands a Responses request that leans on stored state; `Ok(None)` when it does not
    /// (the usual case, decided without parsing the body when it names neither).
    pub async fn expand(
        &self,
        body: &Bytes,
        has_previous: bool,
        p: &Principal,
    ) -> Result<Option<Expanded>, GatewayError> {
        // (Never an error today: what cannot be found is carried in `missing`, for the
        // deployment to decide.)
        if !self.enabled()
            || (!has_previous && memchr::memmem::find(body, b"item_reference").is_none())
        {
            return Ok(None);
        }
        let Ok(Value::Object(mut req)) = serde_json::from_slice::<Value>(body) else {
            return Ok(None);
        };
        let mut history = Vec::new();
        let mut native: Option<String> = None;
        let mut foreign = false;
        if let Some(prev) = req.get("previous_response_id").and_then(Value::as_str) {
            let prev = prev.to_owned();
            let mut chain: Vec<Arc<StoredResponse>> = Vec::new();
            let mut next = Some(prev.clone());
            while let Some(id) = next {
                // A chain that loops (an upstream that reuses ids) ends where it loops.
                if chain.len() >= MAX_CHAIN || chain.iter().any(|r| r.id == id) {
                    break;
                }
                match self.get(&id, p).await {
                    Some(r) => {
                        next = r.previous_response_id.clone();
                        chain.push(r);
                    }
                    None if chain.is_empty() => {
                        // Not ours: an OpenAI deployment may still know it.
                        return Ok(Some(Expanded {
                            body: body.clone(),
                            native: None,
                            missing: Some(not_found(
                                format!("Previous response with id '{id}' not found."),
                                "previous_response_not_found",
                                "previous_response_id",
                            )),
                            relay: false,
                        }));
                    }
                    None => break,
                }
            }
            let head = &chain[0];
            if head.upstream_dialect == "responses" {
                native = Some(head.deployment.clone());
            }
            for r in chain.iter().rev() {
                if r.upstream_dialect != "responses" || Some(&r.deployment) != native.as_ref() {
                    foreign = true;
                }
                history.extend(r.input_items.iter().cloned());
                history.extend(
                    r.response["output"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
            }
            req.remove("previous_response_id");
        }
        let mut input = match req.remove("input") {
            Some(Value::String(s)) => {
                vec![json!({"type": "message", "role": "user", "content": s})]
            }
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        for item in input.iter_mut() {
            if item["type"] != "item_reference" {
                continue;
            }
            let id = item["id"].as_str().unwrap_or_default().to_owned();
            match self.item(&id, p).await {
                Some((found, from)) => {
                    if from.upstream_dialect != "responses"
                        || native.as_ref().is_some_and(|n| *n != from.deployment)
                    {
                        foreign = true;
                    }
                    if native.is_none() && from.upstream_dialect == "responses" && !foreign {
                        native = Some(from.deployment.clone());
                    }
                    *item = found;
                }
                None => {
                    return Ok(Some(Expanded {
                        body: body.clone(),
                        native: None,
                        missing: Some(not_found(
                            format!("Item with id '{id}' not found."),
                            "item_not_found",
                            "input",
                        )),
                        relay: false,
                    }));
                }
            }
        }
        history.extend(input);
        req.insert("input".into(), Value::Array(history));
        Ok(Some(Expanded {
            body: Bytes::from(serde_json::to_vec(&Value::Object(req)).unwrap_or_default()),
            native: if foreign { None } else { native },
            missing: None,
            relay: false,
        }))
    }
}

/// The ids of a stored response's items, input and output.
fn item_ids(r: &StoredResponse) -> Vec<String> {
    r.input_items
        .iter()
        .chain(r.response["output"].as_array().into_iter().flatten())
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

/// The new input items of a request as they are stored: a string input becomes its user
/// message, and an item without an id is given one (`input_items` pages by id).
pub fn input_items(req: &Value, response_id: &str) -> Vec<Value> {
    let mut items = match &req["input"] {
        Value::String(s) => vec![json!({"type": "message", "role": "user", "content": s})],
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    };
    let stem = response_id.strip_prefix("resp_").unwrap_or(response_id);
    for (i, item) in items.iter_mut().enumerate() {
        if let Some(o) = item.as_object_mut()
            && !o.contains_key("id")
        {
            // `in` keeps them apart from the output items' ids, which the encoder makes from
            // the same response id.
            o.insert("id".into(), json!(format!("msg_{stem}_in{i}")));
        }
    }
    items
}

/// What keeping one answered call needs, gathered before the answer; the work of building the
/// stored record (parsing the request and the answer) happens in a task, off the request path.
pub struct Pending {
    pub conv: Arc<Conversations>,
    pub owner: String,
    pub model: String,
    pub deployment: String,
    pub upstream: dragoman_model::Dialect,
    pub request: Bytes,
}

impl Pending {
    /// Keeps a whole answer (the body the client received).
    pub fn keep_body(self, body: Bytes) {
        tokio::spawn(async move {
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                self.keep_now(v);
            }
        });
    }

    /// Keeps a streamed answer: the `response` of its `response.completed` event, whose
    /// `data` line is `data` (parsed in the task).
    pub fn keep_event(self, data: Vec<u8>) {
        tokio::spawn(async move {
            if let Ok(mut v) = serde_json::from_slice::<Value>(&data)
                && let Some(r) = v.get_mut("response").map(Value::take)
            {
                self.keep_now(r);
            }
        });
    }

    fn keep_now(self, response: Value) {
        let Ok(req) = serde_json::from_slice::<Value>(&self.request) else {
            return;
        };
        if req["store"] == Value::Bool(false) {
            return;
        }
        let Some(id) = response["id"].as_str().map(str::to_owned) else {
            return;
        };
        let now = now_ms();
        let ttl = i64::try_from(self.conv.ttl.as_millis()).unwrap_or(i64::MAX);
        let r = StoredResponse {
            input_items: input_items(&req, &id),
            id,
            owner: self.owner,
            created_ms: now,
            expires_ms: now.saturating_add(ttl),
            model: self.model,
            deployment: self.deployment,
            upstream_dialect: self.upstream.as_str().to_owned(),
            previous_response_id: req["previous_response_id"].as_str().map(str::to_owned),
            response,
            replay: Value::Null,
        };
        self.conv.put(r);
    }
}

/// Watches the bytes a Responses client is sent for the stream's `response.completed` event,
/// whose `response` is the whole answer as the client saw it. Only a search until the event
/// starts; from there its bytes are kept (bounded).
pub struct StreamCapture {
    pending: Option<Pending>,
    tail: Vec<u8>,
    event: Option<Vec<u8>>,
}

const COMPLETED: &[u8] = b"event: response.completed";

/// The marker's searcher, built once: building one per write cost more than the searches.
fn completed() -> &'static memchr::memmem::Finder<'static> {
    static F: OnceLock<memchr::memmem::Finder<'static>> = OnceLock::new();
    F.get_or_init(|| memchr::memmem::Finder::new(COMPLETED))
}
/// The most of a completed event kept: a larger answer is not stored.
const MAX_CAPTURE: usize = 16 * 1024 * 1024;

impl StreamCapture {
    pub fn new(pending: Pending) -> StreamCapture {
        StreamCapture {
            pending: Some(pending),
            tail: Vec::new(),
            event: None,
        }
    }

    pub fn see(&mut self, out: &[u8]) {
        if let Some(e) = &mut self.event {
            if e.len() + out.len() <= MAX_CAPTURE {
                e.extend_from_slice(out);
            } else {
                self.pending = None;
            }
            return;
        }
        // The marker may straddle two writes: the end of the last one is searched with the
        // start of this one; this one itself is searched where it lies (never copied).
        if !self.tail.is_empty() {
            let head = &out[..out.len().min(COMPLETED.len())];
            self.tail.extend_from_slice(head);
            if let Some(at) = completed().find(&self.tail) {
                let mut e = self.tail.split_off(at);
                e.truncate(e.len() - head.len());
                e.extend_from_slice(out);
                self.event = Some(e);
                self.tail.clear();
                return;
            }
            self.tail.truncate(self.tail.len() - head.len());
        }
        match completed().find(out) {
            Some(at) => {
                self.event = Some(out[at..].to_vec());
                self.tail.clear();
            }
            None => {
                // What a marker could start with: the last bytes seen, however short the
                // writes.
                let keep = COMPLETED.len() - 1;
                if out.len() >= keep {
                    self.tail.clear();
                    self.tail.extend_from_slice(&out[out.len() - keep..]);
                } else {
                    self.tail.extend_from_slice(out);
                    let extra = self.tail.len().saturating_sub(keep);
                    self.tail.drain(..extra);
                }
            }
        }
    }

    /// The stream ended well: keep what it answered (its parsing is the task's).
    pub fn finish(&mut self) {
        let (Some(pending), Some(mut event)) = (self.pending.take(), self.event.take()) else {
            return;
        };
        let Some(start) = memchr::memmem::find(&event, b"data: ") else {
            return;
        };
        event.drain(..start + 6);
        if let Some(end) = memchr::memchr(b'\n', &event) {
            event.truncate(end);
        }
        pending.keep_event(event);
    }
}

/// What storing costs a streamed answer on the request path, for the benchmark: the capture
/// watching every write of `chunks`, then handing the completed event to its task (a store-less
/// gateway's task, which parses it and keeps nothing). Needs a Tokio runtime.
#[doc(hidden)]
pub fn capture_stream(conv: &Arc<Conversations>, request: &Bytes, chunks: &[Bytes]) {
    let mut c = StreamCapture::new(Pending {
        conv: conv.clone(),
        owner: "bench".into(),
        model: "bench".into(),
        deployment: "bench".into(),
        upstream: dragoman_model::Dialect::Responses,
        request: request.clone(),
    });
    for chunk in chunks {
        c.see(chunk);
    }
    c.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_for(conv: &Arc<Conversations>) -> Pending {
        Pending {
            conv: conv.clone(),
            owner: "o".into(),
            model: "m".into(),
            deployment: "d".into(),
            upstream: dragoman_model::Dialect::Responses,
            request: Bytes::new(),
        }
    }

    /// The completed event is found wherever the stream's writes split it, the marker itself
    /// included, and what is kept is exactly its `data` line.
    #[tokio::test]
    async fn the_completed_event_is_captured_across_any_split() {
        let stream = b"event: response.created\ndata: {\"x\":1}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"output\":[]}}\n\n";
        let conv = Arc::new(Conversations::new(None, Duration::from_secs(60)));
        for cut in 0..=stream.len() {
            for cut2 in [cut, (cut + 7).min(stream.len())] {
                let pending = pending_for(&conv);
                let mut c = StreamCapture::new(pending);
                c.see(&stream[..cut]);
                c.see(&stream[cut..cut2]);
                c.see(&stream[cut2..]);
                let event = c
                    .event
                    .clone()
                    .unwrap_or_else(|| panic!("not found at {cut}/{cut2}"));
                assert!(event.starts_with(COMPLETED), "{cut}/{cut2}");
                assert!(event.ends_with(b"}}\n\n"), "{cut}/{cut2}");
            }
        }
        // One byte per write.
        let pending = pending_for(&conv);
        let mut c = StreamCapture::new(pending);
        for b in stream.chunks(1) {
            c.see(b);
        }
        assert!(
            c.event
                .as_ref()
                .is_some_and(|e| e.starts_with(COMPLETED) && e.ends_with(b"}}\n\n"))
        );
        // A marker that never completes is never captured.
        let pending = pending_for(&conv);
        let mut c = StreamCapture::new(pending);
        c.see(b"event: response.complet");
        c.see(b"e\n");
        c.see(b"d\n");
        assert!(c.event.is_none());
    }
}
