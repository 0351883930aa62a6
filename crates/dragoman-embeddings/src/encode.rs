//! Upstream request bodies and paths for each embedding wire: where the providers differ in
//! batching, dimensions and task hints, this is the one place that knows.

use dragoman_model::DecodeError;
use serde_json::{Map, Value, json};

use crate::request::{EmbedRequest, Input};

/// An upstream embedding API shape.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wire {
    /// OpenAI, Azure OpenAI, OpenAI-compatible servers.
    OpenAi,
    /// Gemini API `:batchEmbedContents`.
    Gemini,
    /// Vertex AI `:predict` (text-embedding-*, gemini-embedding-001).
    Vertex,
    /// Bedrock `amazon.titan-embed-*` InvokeModel.
    Titan,
    /// Bedrock `cohere.embed-*` InvokeModel.
    Cohere,
}

/// Region prefixes of Bedrock cross-region inference profiles (`us.cohere.embed-v4:0`).
const BEDROCK_REGION_PREFIXES: &[&str] =
    &["us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"];

impl Wire {
    /// The wire of a Bedrock embedding model by its id, a region prefix (`us.`, `eu.`, …)
    /// stripped; `None` for ids this crate cannot serve (Nova, ARNs, chat models).
    pub fn for_bedrock_model(model_id: &str) -> Option<Wire> {
        let id = model_id.strip_prefix("bedrock/").unwrap_or(model_id);
        let id = match id.split_once('.') {
            Some((region, rest)) if BEDROCK_REGION_PREFIXES.contains(&region) => rest,
            _ => id,
        };
        if id.starts_with("amazon.titan-embed-") {
            Some(Wire::Titan)
        } else if id.starts_with("cohere.embed-") {
            Some(Wire::Cohere)
        } else {
            None
        }
    }
}

fn bare_google(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

/// Cohere's cap on texts per call.
const COHERE_BATCH: usize = 96;

/// The upstream bodies for one client call: one for most wires, one per input for Titan (it
/// embeds one text per call), one per 96 inputs for Cohere. Tokens inputs to a non-OpenAI wire
/// are an error; `dimensions` maps to `outputDimensionality` / `dimensions` /
/// `output_dimension` where the model takes it, is dropped where it names the model's fixed
/// size, and is an error otherwise (crate doc).
pub fn encode_request(
    wire: Wire,
    req: &EmbedRequest,
    upstream_model: &str,
) -> Result<Vec<Value>, DecodeError> {
    match wire {
        Wire::OpenAi => Ok(vec![openai_body(req, upstream_model)]),
        Wire::Gemini => gemini_body(req, &texts(wire, req)?, upstream_model).map(|b| vec![b]),
        Wire::Vertex => vertex_body(req, &texts(wire, req)?).map(|b| vec![b]),
        Wire::Titan => titan_bodies(req, &texts(wire, req)?, upstream_model),
        Wire::Cohere => cohere_bodies(req, &texts(wire, req)?, upstream_model),
    }
}

/// The inputs as text, or the error for token inputs on a wire that cannot take them.
fn texts(wire: Wire, req: &EmbedRequest) -> Result<Vec<&str>, DecodeError> {
    req.inputs
        .iter()
        .enumerate()
        .map(|(i, input)| match input {
            Input::Text(s) => Ok(s.as_str()),
            Input::Tokens(_) => Err(DecodeError::new(
                if req.single {
                    "input".to_owned()
                } else {
                    format!("input[{i}]")
                },
                format!(
                    "token-id input is supported only for OpenAI-family upstreams; this model \
                     is served by {wire:?}, whose tokenizer differs: send text instead"
                ),
            )),
        })
        .collect()
}

fn openai_body(req: &EmbedRequest, upstream_model: &str) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), upstream_model.into());
    let item = |input: &Input| match input {
        Input::Text(s) => Value::from(s.as_str()),
        Input::Tokens(ids) => Value::from(ids.clone()),
    };
    let input = match (req.single, req.inputs.as_slice()) {
        (true, [one]) => item(one),
        (_, all) => Value::Array(all.iter().map(item).collect()),
    };
    body.insert("input".into(), input);
    body.insert("encoding_format".into(), req.encoding.as_str().into());
    if let Some(d) = req.dimensions {
        body.insert("dimensions".into(), d.into());
    }
    if let Some(u) = &req.user {
        body.insert("user".into(), u.as_str().into());
    }
    if let Some(t) = &req.task {
        body.insert("input_type".into(), t.as_str().into());
    }
    for (k, v) in &req.extra {
        body.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Value::Object(body)
}

/// Google's `TaskType` names, shared by the Gemini API and Vertex.
const GOOGLE_TASKS: &[&str] = &[
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
];

/// The task hint as a Google `TaskType` name, from Google's or Cohere's vocabulary.
fn google_task(task: &str) -> Result<&'static str, DecodeError> {
    let upper = task.to_ascii_uppercase();
    let name = match upper.as_str() {
        "SEARCH_QUERY" => "RETRIEVAL_QUERY",
        "SEARCH_DOCUMENT" => "RETRIEVAL_DOCUMENT",
        other => other,
    };
    GOOGLE_TASKS
        .iter()
        .find(|t| **t == name)
        .copied()
        .ok_or_else(|| {
            DecodeError::new(
                "input_type",
                format!(
                    "unknown task {task:?}: expected one of {} (any case), search_query or \
                     search_document",
                    GOOGLE_TASKS.join(", ")
                ),
            )
        })
}

/// `gemini-embedding-2` (GA) takes no `taskType`; its `-preview` and older models do.
fn takes_task_type(model: &str) -> bool {
    let m = bare_google(model);
    !m.starts_with("gemini-embedding-2") || m.contains("preview")
}

fn gemini_body(
    req: &EmbedRequest,
    texts: &[&str],
    upstream_model: &str,
) -> Result<Value, DecodeError> {
    let task = match &req.task {
        Some(t) if takes_task_type(upstream_model) => Some(google_task(t)?),
        _ => None,
    };
    // Every batch item must name the path's model (the API rejects items without it).
    let model = format!("models/{}", bare_google(upstream_model));
    let requests = texts
        .iter()
        .map(|t| {
            let mut item = Map::new();
            item.insert("model".into(), model.as_str().into());
            item.insert("content".into(), json!({ "parts": [{ "text": t }] }));
            if let Some(task) = task {
                item.insert("taskType".into(), task.into());
            }
            if let Some(d) = req.dimensions {
                item.insert("outputDimensionality".into(), d.into());
            }
            Value::Object(item)
        })
        .collect::<Vec<_>>();
    Ok(json!({ "requests": requests }))
}

fn vertex_body(req: &EmbedRequest, texts: &[&str]) -> Result<Value, DecodeError> {
    let task = req.task.as_deref().map(google_task).transpose()?;
    // Instance keys are snake_case, parameter keys camelCase: the body is a free-form Value
    // in Vertex's proto, so casing is literal.
    let instances = texts
        .iter()
        .map(|t| {
            let mut inst = Map::new();
            inst.insert("content".into(), (*t).into());
            if let Some(task) = task {
                inst.insert("task_type".into(), task.into());
            }
            Value::Object(inst)
        })
        .collect::<Vec<_>>();
    let mut body = Map::new();
    body.insert("instances".into(), Value::Array(instances));
    if let Some(d) = req.dimensions {
        body.insert("parameters".into(), json!({ "outputDimensionality": d }));
    }
    Ok(Value::Object(body))
}

fn bedrock_base(model: &str) -> &str {
    model.rsplit('/').next().unwrap_or(model)
}

fn titan_bodies(
    req: &EmbedRequest,
    texts: &[&str],
    upstream_model: &str,
) -> Result<Vec<Value>, DecodeError> {
    let v1 = bedrock_base(upstream_model).contains("titan-embed-text-v1");
    let dimensions = match (v1, req.dimensions) {
        (_, None) | (true, Some(1536)) => None,
        (true, Some(d)) => {
            return Err(DecodeError::new(
                "dimensions",
                format!("{upstream_model} has a fixed size of 1536; {d} is not available"),
            ));
        }
        (false, Some(d @ (256 | 512 | 1024))) => Some(d),
        (false, Some(d)) => {
            return Err(DecodeError::new(
                "dimensions",
                format!("{upstream_model} takes 1024, 512 or 256, not {d}"),
            ));
        }
    };
    Ok(texts
        .iter()
        .map(|t| {
            let mut body = Map::new();
            body.insert("inputText".into(), (*t).into());
            if !v1 {
                if let Some(d) = dimensions {
                    body.insert("dimensions".into(), d.into());
                }
                body.insert("normalize".into(), true.into());
            }
            Value::Object(body)
        })
        .collect())
}

fn cohere_input_type(task: Option<&str>) -> Result<&'static str, DecodeError> {
    let Some(task) = task else {
        return Ok("search_document");
    };
    Ok(match google_task(task)? {
        "RETRIEVAL_DOCUMENT" => "search_document",
        "RETRIEVAL_QUERY" | "QUESTION_ANSWERING" | "FACT_VERIFICATION" | "CODE_RETRIEVAL_QUERY" => {
            "search_query"
        }
        "CLASSIFICATION" => "classification",
        "CLUSTERING" => "clustering",
        _ => {
            return Err(DecodeError::new(
                "input_type",
                format!(
                    "{task:?} has no Cohere equivalent: use search_query, search_document, \
                     classification or clustering"
                ),
            ));
        }
    })
}

fn cohere_bodies(
    req: &EmbedRequest,
    texts: &[&str],
    upstream_model: &str,
) -> Result<Vec<Value>, DecodeError> {
    let input_type = cohere_input_type(req.task.as_deref())?;
    let v4 = bedrock_base(upstream_model).contains("embed-v4");
    let output_dimension = match (v4, req.dimensions) {
        (_, None) | (false, Some(1024)) => None,
        (false, Some(d)) => {
            return Err(DecodeError::new(
                "dimensions",
                format!("{upstream_model} has a fixed size of 1024; {d} is not available"),
            ));
        }
        (true, Some(d @ (256 | 512 | 1024 | 1536))) => Some(d),
        (true, Some(d)) => {
            return Err(DecodeError::new(
                "dimensions",
                format!("{upstream_model} takes 256, 512, 1024 or 1536, not {d}"),
            ));
        }
    };
    Ok(texts
        .chunks(COHERE_BATCH)
        .map(|chunk| {
            let mut body = Map::new();
            body.insert("texts".into(), chunk.to_vec().into());
            body.insert("input_type".into(), input_type.into());
            if let Some(d) = output_dimension {
                body.insert("output_dimension".into(), d.into());
            }
            body.insert("truncate".into(), "NONE".into());
            Value::Object(body)
        })
        .collect())
}
