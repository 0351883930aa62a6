//! Embedding calls translated between the OpenAI `/v1/embeddings` dialect that clients speak
//! and each upstream's embedding API (OpenAI and its family, Gemini API, Vertex AI `:predict`,
//! Bedrock Titan and Cohere): pure and synchronous, no I/O, so the gateway can serve
//! `mode: embedding` deployments without knowing any provider's shapes. Wire facts are in
//! `shared/protocols/EMBEDDINGS.md`.
//!
//! The gateway's flow: [`decode_request`] the client body, [`encode_request`] one or more
//! upstream bodies for the deployment's [`Wire`] and post each to the address the gateway makes for it,
//! hand the answers to [`decode_response`] in the same order, then [`encode_response`] in the
//! client's [`Encoding`]. An OpenAI-family upstream asked in the client's own encoding can be
//! passed through untouched, with [`openai_usage`] as the accounting tap; when it answered
//! floats to a base64 request (some compatible servers ignore `encoding_format`),
//! [`decode_openai_response`] then [`encode_response`] re-encode it.
//!
//! Choices this crate makes:
//! - **Validation** follows OpenAI: `model` a non-empty string; `input` present, a string, an
//!   array of 1–2048 strings, one token array, or 1–2048 token arrays; no empty string and no
//!   empty token array (OpenAI rejects both, and other providers' behaviour on them is
//!   unverified); token ids fit `u32`; `encoding_format` `float` or `base64` (absent = `float`,
//!   as the spec says: the OpenAI SDK sends `base64` itself when its caller chose nothing);
//!   `dimensions` an integer ≥ 1. Every error names its field (`DecodeError::path`).
//! - **`task`** comes from LiteLLM's `input_type` (or, failing that, `task_type`). It is read as
//!   one of Google's `TaskType` names (any case) or Cohere's `input_type` names
//!   (`search_query` = `RETRIEVAL_QUERY`, `search_document` = `RETRIEVAL_DOCUMENT`,
//!   `classification`, `clustering`); anything else is an error naming the accepted values.
//!   Gemini gets `taskType` and Vertex `instances[].task_type` (the Google name); Cohere gets
//!   `input_type` (query-side Google tasks become `search_query`; `SEMANTIC_SIMILARITY` has no
//!   Cohere equivalent and is an error); Titan has no task and drops it; OpenAI-family upstreams
//!   get it back as `input_type` (some compatible servers, NVIDIA NIM, read it; the client
//!   sent it).
//!   `gemini-embedding-2` (GA, not `-preview`) takes no `taskType`: the hint is dropped there
//!   rather than rewriting the client's text into Google's `task: … | query: …` prefix.
//! - **Cohere `input_type`** is required by Bedrock; without a hint it is `search_document`
//!   (LiteLLM's default). `truncate` is always `NONE`, so an oversize input is an error as on
//!   OpenAI. More than 96 inputs are split into calls of 96 (Cohere's limit), answered in order.
//! - **`dimensions`**: OpenAI family passes it as is; Gemini `outputDimensionality` on every
//!   batch item; Vertex `parameters.outputDimensionality`; Titan v2 `dimensions`, only 1024, 512
//!   or 256 (anything else is an error here rather than a Bedrock `ValidationException`); Titan
//!   v1 and Cohere v3 have a fixed size (1536, 1024): asking for that size is dropped as a no-op,
//!   any other is an error; Cohere v4 `output_dimension`, only 256, 512, 1024 or 1536.
//! - **Titan** embeds one text per call: N inputs are N bodies, answered in input order. Titan
//!   v2 bodies always carry `"normalize": true` (Bedrock's default, written out so that the
//!   vectors are unit length whatever the default becomes, as OpenAI's are). Base64 output is
//!   never mapped to Titan's `binary` type (a 1-bit quantisation, not the same vector).
//! - **Vertex** `:predict` bodies carry no `autoTruncate`: Google's default (truncate) is kept,
//!   as the recorded client (pydantic-ai) does; `gemini-embedding-2` on Vertex (`:embedContent`) is
//!   not a wire here.
//! - **Token inputs** go only to OpenAI-family upstreams; any other wire is an error (a foreign
//!   tokenizer's ids mean nothing to Google or Bedrock, and detokenizing would guess).
//! - **`user`** goes to OpenAI-family upstreams (it is OpenAI's field) and is dropped for the
//!   rest; `extra` (fields this crate does not know) likewise goes only to the OpenAI family.
//! - **Usage**: OpenAI `usage.prompt_tokens`; Vertex the sum of `statistics.token_count`; Titan
//!   the sum of `inputTextTokenCount` (or the `x-amzn-bedrock-input-token-count` header); Cohere
//!   the header. A total is reported only when every part reports one, since a partial sum would
//!   under-bill; otherwise `input_tokens` is `None`. The Gemini API reports none: the gateway then
//!   uses [`estimate_tokens`] and marks the usage record estimated.
//! - **Floats** are read as f64 and narrowed to f32 (the providers' decimals come from f32
//!   values, so narrowing recovers them exactly) and written as the shortest decimal that
//!   reads back to the same f32 (`0.1`, not `0.10000000149011612`). Base64 is the f32 values as
//!   little-endian bytes, standard alphabet with padding, as OpenAI sends it.
//! - **`model`** in [`EmbedResponse`] is what the upstream reported (empty when it reports
//!   none); the client's answer names `client_model`, the name the client sent.

mod encode;
mod request;
mod response;

#[cfg(test)]
mod tests;

pub use dragoman_model::DecodeError;
pub use encode::{Wire, encode_request};
pub use request::{EmbedRequest, Encoding, Input, decode_request};
pub use response::{
    EmbedResponse, Part, decode_openai_response, decode_response, encode_response, estimate_tokens,
    openai_usage,
};
