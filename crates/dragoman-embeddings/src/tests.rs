//! Tests of the embeddings codec against the recorded Titan and Vertex exchanges
//! (`test_data/embeddings/`, see PROVENANCE.md), the shapes EMBEDDINGS.md documents for the
//! wires without a copied recording, and the OpenAI round trip in both encodings.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::*;

const TITAN_REQ: &str = include_str!(
    "../../../test_data/embeddings/bedrock-pydantic-ai__TestBedrock.test_titan_v2_with_dimensions.request.json"
);
const TITAN_RESP: &str = include_str!(
    "../../../test_data/embeddings/bedrock-pydantic-ai__TestBedrock.test_titan_v2_with_dimensions.response.json"
);
const VERTEX_REQ: &str = include_str!(
    "../../../test_data/embeddings/vertex-pydantic-ai__TestGoogle.test_vertex_query.request.json"
);
const VERTEX_RESP: &str = include_str!(
    "../../../test_data/embeddings/vertex-pydantic-ai__TestGoogle.test_vertex_query.response.json"
);

fn req(v: Value) -> EmbedRequest {
    decode_request(v.to_string().as_bytes()).unwrap()
}

fn err(v: Value) -> DecodeError {
    decode_request(v.to_string().as_bytes()).unwrap_err()
}

fn part(body: &[u8]) -> Part<'_> {
    Part {
        body,
        header_tokens: None,
    }
}

#[test]
fn titan_v2_request_matches_the_recording() {
    let r = req(json!({"model": "titan", "input": "Test embedding dimensions", "dimensions": 256}));
    let bodies = encode_request(Wire::Titan, &r, "amazon.titan-embed-text-v2:0").unwrap();
    let recorded: Value = serde_json::from_str(TITAN_REQ).unwrap();
    assert_eq!(bodies, vec![recorded.clone()]);
    // Same keys in the same order as the SDK wrote them.
    assert_eq!(bodies[0].to_string(), recorded.to_string());
}

#[test]
fn vertex_request_matches_the_recording() {
    for task in ["RETRIEVAL_QUERY", "retrieval_query", "search_query"] {
        let r = req(json!({"model": "g", "input": "Hello, world!", "input_type": task}));
        let bodies = encode_request(Wire::Vertex, &r, "gemini-embedding-001").unwrap();
        let recorded: Value = serde_json::from_str(VERTEX_REQ).unwrap();
        assert_eq!(bodies, vec![recorded], "{task}");
    }
    let r = req(json!({"model": "g", "input": ["a", "b"], "dimensions": 768}));
    let bodies = encode_request(Wire::Vertex, &r, "text-embedding-005").unwrap();
    assert_eq!(
        bodies,
        vec![json!({"instances": [{"content": "a"}, {"content": "b"}],
                    "parameters": {"outputDimensionality": 768}})]
    );
}

#[test]
fn titan_response_gives_its_vector_and_count() {
    let r = decode_response(Wire::Titan, &[part(TITAN_RESP.as_bytes())]).unwrap();
    assert_eq!(r.vectors.len(), 1);
    assert_eq!(r.vectors[0].len(), 256);
    assert_eq!(r.input_tokens, Some(4));
    assert_eq!(r.vectors[0][0], -0.120_866_075_f32);
    // The recorded double is an f32 widened: narrowing gives it back exactly.
    assert_eq!(f64::from(r.vectors[0][0]), -0.1208660751581192);
}

#[test]
fn vertex_response_sums_token_counts() {
    let r = decode_response(Wire::Vertex, &[part(VERTEX_RESP.as_bytes())]).unwrap();
    assert_eq!(r.vectors.len(), 1);
    assert_eq!(r.vectors[0].len(), 3072);
    assert_eq!(r.input_tokens, Some(4));
    let two = json!({"predictions": [
        {"embeddings": {"values": [0.5], "statistics": {"token_count": 4, "truncated": false}}},
        {"embeddings": {"values": [0.25], "statistics": {"token_count": 3.0, "truncated": false}}}
    ], "metadata": {"billableCharacterCount": 9}})
    .to_string();
    let r = decode_response(Wire::Vertex, &[part(two.as_bytes())]).unwrap();
    assert_eq!(r.vectors, vec![vec![0.5], vec![0.25]]);
    assert_eq!(r.input_tokens, Some(7));
}

#[test]
fn cohere_reads_both_response_shapes() {
    // EMBEDDINGS.md §6: v3 without embedding_types answers a list; v4 always by type.
    let floats = json!({"id": "x", "response_type": "embeddings_floats",
        "embeddings": [[0.5, -1.0], [2.0, 0.0]], "texts": ["hello", "world"]})
    .to_string();
    let by_type = json!({"id": "x", "response_type": "embeddings_by_type",
        "embeddings": {"int8": [[1, 2], [3, 4]], "float": [[0.5, -1.0], [2.0, 0.0]]},
        "texts": ["hello", "world"]})
    .to_string();
    for body in [&floats, &by_type] {
        let p = Part {
            body: body.as_bytes(),
            header_tokens: Some(5),
        };
        let r = decode_response(Wire::Cohere, &[p]).unwrap();
        assert_eq!(r.vectors, vec![vec![0.5, -1.0], vec![2.0, 0.0]]);
        assert_eq!(r.input_tokens, Some(5));
    }
    let r = decode_response(Wire::Cohere, &[part(floats.as_bytes())]).unwrap();
    assert_eq!(r.input_tokens, None, "Cohere's count is only in the header");
    let no_float = json!({"embeddings": {"int8": [[1, 2]]}}).to_string();
    let e = decode_response(Wire::Cohere, &[part(no_float.as_bytes())]).unwrap_err();
    assert!(e.message.contains("float"), "{e}");
}

#[test]
fn cohere_request_bodies() {
    // The body pydantic-ai recorded for cohere.embed-english-v3 (EMBEDDINGS.md §6.1).
    let r = req(json!({"model": "c", "input": "Hello, world!", "input_type": "search_query"}));
    let bodies = encode_request(Wire::Cohere, &r, "cohere.embed-english-v3").unwrap();
    let want =
        json!({"texts": ["Hello, world!"], "input_type": "search_query", "truncate": "NONE"});
    assert_eq!(bodies[0].to_string(), want.to_string());

    let r = req(json!({"model": "c", "input": ["a"], "dimensions": 512}));
    let bodies = encode_request(Wire::Cohere, &r, "us.cohere.embed-v4:0").unwrap();
    assert_eq!(
        bodies,
        vec![json!({"texts": ["a"], "input_type": "search_document",
                    "output_dimension": 512, "truncate": "NONE"})]
    );
    let e = encode_request(Wire::Cohere, &r, "cohere.embed-english-v3").unwrap_err();
    assert_eq!(e.path, "dimensions");
    let r = req(json!({"model": "c", "input": ["a"], "dimensions": 1024}));
    let bodies = encode_request(Wire::Cohere, &r, "cohere.embed-english-v3").unwrap();
    assert!(bodies[0].get("output_dimension").is_none());

    let many: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    let r = req(json!({"model": "c", "input": many}));
    let bodies = encode_request(Wire::Cohere, &r, "cohere.embed-v4:0").unwrap();
    let sizes: Vec<usize> = bodies
        .iter()
        .map(|b| b["texts"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![96, 96, 8]);
    assert_eq!(bodies[2]["texts"][0], "t192");

    let r = req(json!({"model": "c", "input": "a", "input_type": "semantic_similarity"}));
    let e = encode_request(Wire::Cohere, &r, "cohere.embed-v4:0").unwrap_err();
    assert_eq!(e.path, "input_type");
}

#[test]
fn titan_fans_out_and_keeps_input_order() {
    let r = req(json!({"model": "t", "input": ["one", "two", "three"]}));
    let bodies = encode_request(Wire::Titan, &r, "amazon.titan-embed-text-v2:0").unwrap();
    let texts: Vec<&str> = bodies
        .iter()
        .map(|b| b["inputText"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert_eq!(bodies[0], json!({"inputText": "one", "normalize": true}));

    let answers: Vec<String> = [1.0f32, 2.0, 3.0]
        .iter()
        .enumerate()
        .map(|(i, x)| json!({"embedding": [x], "inputTextTokenCount": i + 1}).to_string())
        .collect();
    let parts: Vec<Part<'_>> = answers.iter().map(|a| part(a.as_bytes())).collect();
    let resp = decode_response(Wire::Titan, &parts).unwrap();
    assert_eq!(resp.vectors, vec![vec![1.0], vec![2.0], vec![3.0]]);
    assert_eq!(resp.input_tokens, Some(6));
    let out = encode_response(&resp, Encoding::Float, "my-alias");
    let idx: Vec<u64> = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [0, 1, 2]);
    assert_eq!(out["data"][2]["embedding"], json!([3.0]));
    assert_eq!(out["model"], "my-alias");

    // One part without a count: no total rather than an under-count; the header fills in.
    let bare = json!({"embedding": [4.0]}).to_string();
    let mut parts = parts.clone();
    parts.push(part(bare.as_bytes()));
    assert_eq!(
        decode_response(Wire::Titan, &parts).unwrap().input_tokens,
        None
    );
    parts[3].header_tokens = Some(2);
    assert_eq!(
        decode_response(Wire::Titan, &parts).unwrap().input_tokens,
        Some(8)
    );
}

#[test]
fn titan_dimensions_are_checked() {
    let r = req(json!({"model": "t", "input": "x", "dimensions": 300}));
    let e = encode_request(Wire::Titan, &r, "amazon.titan-embed-text-v2:0").unwrap_err();
    assert_eq!(e.path, "dimensions");
    assert!(e.message.contains("1024, 512 or 256"), "{e}");
    let e = encode_request(Wire::Titan, &r, "amazon.titan-embed-text-v1").unwrap_err();
    assert!(e.message.contains("1536"), "{e}");
    let r = req(json!({"model": "t", "input": "x", "dimensions": 1536}));
    let bodies = encode_request(Wire::Titan, &r, "amazon.titan-embed-text-v1").unwrap();
    assert_eq!(bodies, vec![json!({"inputText": "x"})]);
}

#[test]
fn gemini_batch_names_the_model_on_every_item() {
    let r = req(
        json!({"model": "g", "input": ["hello", "world"], "dimensions": 768,
                       "input_type": "RETRIEVAL_DOCUMENT"}),
    );
    let bodies = encode_request(Wire::Gemini, &r, "models/gemini-embedding-001").unwrap();
    let item = |t: &str| {
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]},
               "taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 768})
    };
    assert_eq!(
        bodies,
        vec![json!({"requests": [item("hello"), item("world")]})]
    );
    // gemini-embedding-2 (GA) takes no taskType; the preview does.
    let r = req(json!({"model": "g", "input": "q", "input_type": "search_query"}));
    let ga = encode_request(Wire::Gemini, &r, "gemini-embedding-2").unwrap();
    assert!(ga[0]["requests"][0].get("taskType").is_none());
    let pre = encode_request(Wire::Gemini, &r, "gemini-embedding-2-preview").unwrap();
    assert_eq!(pre[0]["requests"][0]["taskType"], "RETRIEVAL_QUERY");

    let answer =
        json!({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}).to_string();
    let resp = decode_response(Wire::Gemini, &[part(answer.as_bytes())]).unwrap();
    assert_eq!(resp.vectors, vec![vec![0.1, 0.2], vec![0.3, 0.4]]);
    assert_eq!(resp.input_tokens, None);
    let r = req(json!({"model": "g", "input": ["hello", "a longer input"]}));
    assert_eq!(estimate_tokens(&r), 2 + 4);
}

#[test]
fn openai_bodies_keep_the_clients_shape() {
    let r = req(
        json!({"model": "alias", "input": "hi", "encoding_format": "base64",
                       "user": "u1", "dimensions": 256, "x_custom": 1}),
    );
    let bodies = encode_request(Wire::OpenAi, &r, "text-embedding-3-small").unwrap();
    assert_eq!(
        bodies,
        vec![json!({"model": "text-embedding-3-small", "input": "hi",
                    "encoding_format": "base64", "dimensions": 256, "user": "u1", "x_custom": 1})]
    );
    let r = req(json!({"model": "m", "input": [1, 2, 3]}));
    assert!(r.single);
    let b = encode_request(Wire::OpenAi, &r, "m").unwrap();
    assert_eq!(b[0]["input"], json!([1, 2, 3]));
    assert_eq!(b[0]["encoding_format"], "float");
    let r = req(json!({"model": "m", "input": [[1, 2], [3]]}));
    let b = encode_request(Wire::OpenAi, &r, "m").unwrap();
    assert_eq!(b[0]["input"], json!([[1, 2], [3]]));
    let r = req(json!({"model": "m", "input": ["a"], "input_type": "query"}));
    let b = encode_request(Wire::OpenAi, &r, "m").unwrap();
    assert_eq!(b[0]["input"], json!(["a"]));
    assert_eq!(b[0]["input_type"], "query");
}

#[test]
fn openai_answers_decode_in_index_order_and_tap_usage() {
    let body = json!({"object": "list", "model": "text-embedding-3-small",
        "data": [
            {"object": "embedding", "index": 1, "embedding": "AACAPwAAAMAAAAA/"},
            {"object": "embedding", "index": 0, "embedding": [0.25, 1]}
        ],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}})
    .to_string();
    let r = decode_openai_response(body.as_bytes()).unwrap();
    assert_eq!(r.vectors, vec![vec![0.25, 1.0], vec![1.0, -2.0, 0.5]]);
    assert_eq!(r.model, "text-embedding-3-small");
    assert_eq!(r.input_tokens, Some(3));
    assert_eq!(openai_usage(body.as_bytes()), Some(3));
    assert_eq!(openai_usage(br#"{"data": []}"#), None);
    assert_eq!(openai_usage(b"not json"), None);
    let dup = json!({"data": [{"index": 0, "embedding": [1]}, {"index": 0, "embedding": [2]}]});
    let e = decode_openai_response(dup.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.path, "data[1].index");
    let odd = json!({"data": [{"index": 0, "embedding": "AAAA"}]}).to_string();
    assert!(
        decode_openai_response(odd.as_bytes()).is_err(),
        "3 bytes is no f32"
    );
}

#[test]
fn base64_is_little_endian_f32_with_padding() {
    // Independently: python3 -c "import struct,base64;
    //   print(base64.b64encode(struct.pack('<3f',1.0,-2.0,0.5)).decode())"
    let resp = EmbedResponse {
        vectors: vec![vec![1.0, -2.0, 0.5]],
        model: String::new(),
        input_tokens: Some(2),
    };
    let out = encode_response(&resp, Encoding::Base64, "m");
    assert_eq!(out["data"][0]["embedding"], "AACAPwAAAMAAAAA/");
    assert_eq!(out["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
    let back = decode_openai_response(out.to_string().as_bytes()).unwrap();
    assert_eq!(back.vectors, resp.vectors);
    assert_eq!(back.input_tokens, Some(2));
}

#[test]
fn floats_print_as_their_shortest_f32_decimal() {
    let resp = EmbedResponse {
        vectors: vec![vec![0.1, -0.120_866_075, 1e-7, -0.0, 3.0]],
        model: String::new(),
        input_tokens: None,
    };
    let text = encode_response(&resp, Encoding::Float, "m").to_string();
    assert!(
        text.contains(r#""embedding":[0.1,-0.120866075,1e-7,-0.0,3.0]"#),
        "{text}"
    );
    assert!(text.contains(r#""prompt_tokens":0"#));
}

#[test]
fn bad_requests_name_their_field() {
    let cases = [
        (json!({"model": "m"}), "input", "missing"),
        (json!({"model": "m", "input": null}), "input", "missing"),
        (json!({"model": "m", "input": ""}), "input", "empty string"),
        (json!({"model": "m", "input": []}), "input", "empty array"),
        (
            json!({"model": "m", "input": ["a", ""]}),
            "input[1]",
            "empty string",
        ),
        (
            json!({"model": "m", "input": [[1], []]}),
            "input[1]",
            "empty token array",
        ),
        (
            json!({"model": "m", "input": [1, -2]}),
            "input[1]",
            "token id",
        ),
        (
            json!({"model": "m", "input": ["a", 3]}),
            "input[1]",
            "expected",
        ),
        (
            json!({"model": "m", "input": {"a": 1}}),
            "input",
            "expected",
        ),
        (
            json!({"model": "m", "input": "a", "encoding_format": "hex"}),
            "encoding_format",
            "\"hex\"",
        ),
        (
            json!({"model": "m", "input": "a", "encoding_format": 1}),
            "encoding_format",
            "expected",
        ),
        (
            json!({"model": "m", "input": "a", "dimensions": 0}),
            "dimensions",
            "at least 1",
        ),
        (
            json!({"model": "m", "input": "a", "dimensions": 1.5}),
            "dimensions",
            "at least 1",
        ),
        (
            json!({"model": "m", "input": "a", "dimensions": "8"}),
            "dimensions",
            "integer",
        ),
        (
            json!({"model": "m", "input": "a", "user": 1}),
            "user",
            "string",
        ),
        (json!({"input": "a"}), "model", "missing"),
        (json!({"model": "", "input": "a"}), "model", "empty"),
    ];
    for (body, path, needle) in cases {
        let e = err(body.clone());
        assert_eq!(e.path, path, "{body}: {e}");
        assert!(e.message.contains(needle), "{body}: {e}");
    }
    let too_many: Vec<&str> = vec!["x"; 2049];
    assert!(
        err(json!({"model": "m", "input": too_many}))
            .message
            .contains("2048")
    );
    assert_eq!(decode_request(b"[1]").unwrap_err().path, "");
    assert!(decode_request(b"{").is_err());
}

#[test]
fn tokens_go_only_to_openai_family() {
    let r = req(json!({"model": "m", "input": [[1, 2], [3]]}));
    for wire in [Wire::Gemini, Wire::Vertex, Wire::Titan, Wire::Cohere] {
        let e = encode_request(wire, &r, "x").unwrap_err();
        assert_eq!(e.path, "input[0]");
        assert!(e.message.contains("token-id input"), "{e}");
    }
    let r = req(json!({"model": "m", "input": [5, 6]}));
    let e = encode_request(Wire::Gemini, &r, "gemini-embedding-001").unwrap_err();
    assert_eq!(e.path, "input");
    assert_eq!(estimate_tokens(&r), 2);
}

#[test]
fn unknown_task_is_an_error() {
    let r = req(json!({"model": "m", "input": "a", "task_type": "poetry"}));
    assert_eq!(r.task.as_deref(), Some("poetry"));
    let e = encode_request(Wire::Vertex, &r, "text-embedding-005").unwrap_err();
    assert_eq!(e.path, "input_type");
    assert!(e.message.contains("RETRIEVAL_QUERY"), "{e}");
    // Titan has no task: dropped.
    assert!(encode_request(Wire::Titan, &r, "amazon.titan-embed-text-v2:0").is_ok());
}

#[test]
fn bedrock_wire_by_model_id() {
    let cases = [
        ("amazon.titan-embed-text-v2:0", Some(Wire::Titan)),
        ("amazon.titan-embed-text-v1", Some(Wire::Titan)),
        ("cohere.embed-english-v3", Some(Wire::Cohere)),
        ("us.cohere.embed-v4:0", Some(Wire::Cohere)),
        ("global.cohere.embed-v4:0", Some(Wire::Cohere)),
        ("eu.amazon.titan-embed-text-v2:0", Some(Wire::Titan)),
        ("bedrock/cohere.embed-v4:0", Some(Wire::Cohere)),
        ("amazon.nova-2-multimodal-embeddings-v1:0", None),
        ("anthropic.claude-sonnet-4-5", None),
        ("cohere.command-r-v1:0", None),
    ];
    for (id, want) in cases {
        assert_eq!(Wire::for_bedrock_model(id), want, "{id}");
    }
}

#[test]
fn decode_response_refuses_empty_answers() {
    assert!(decode_response(Wire::Titan, &[]).is_err());
    let none = json!({"embeddings": []}).to_string();
    assert!(decode_response(Wire::Gemini, &[part(none.as_bytes())]).is_err());
    let e = decode_response(Wire::Titan, &[part(b"{}"), part(b"{}")]).unwrap_err();
    assert_eq!(e.path, "part[0].embedding");
}

fn finite_vector() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        any::<u32>()
            .prop_map(f32::from_bits)
            .prop_filter("JSON holds finite numbers", |x| x.is_finite()),
        1..40,
    )
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips_in_both_encodings(
        vectors in prop::collection::vec(finite_vector(), 1..5),
        tokens in proptest::option::of(0u64..1_000_000),
    ) {
        let resp = EmbedResponse { vectors, model: String::new(), input_tokens: tokens };
        for encoding in [Encoding::Float, Encoding::Base64] {
            let bytes = serde_json::to_vec(&encode_response(&resp, encoding, "m")).unwrap();
            let back = decode_openai_response(&bytes).unwrap();
            let bits = |v: &[Vec<f32>]| -> Vec<Vec<u32>> {
                v.iter().map(|x| x.iter().map(|f| f.to_bits()).collect()).collect()
            };
            prop_assert_eq!(bits(&back.vectors), bits(&resp.vectors));
            prop_assert_eq!(back.input_tokens, Some(tokens.unwrap_or(0)));
        }
    }
}
