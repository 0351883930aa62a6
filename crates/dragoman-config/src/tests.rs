//! Tests of LiteLLM config compatibility: real-shaped files parse, bad values name their path,
//! unsupported keys warn once.

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "OPENAI_API_KEY" => Some("sk-openai".into()),
        "AZURE_KEY" => Some("az".into()),
        _ => None,
    }
}

const LITELLM: &str = r#"
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      rpm: 60
  - model_name: gpt-5-codex
    litellm_params:
      model: openai/gpt-5-codex
      api_key: os.environ/OPENAI_API_KEY
      timeout: 30
      stream_timeout: 12.5
    model_info:
      mode: responses
      input_cost_per_token: 0.00000125
  - model_name: claude
    litellm_params:
      model: anthropic/claude-sonnet-4-5
      api_key: os.environ/ANTHROPIC_API_KEY
      extra_headers: {anthropic-beta: "context-1m-2025-08-07"}
  - model_name: azure-gpt
    litellm_params:
      model: azure/my-deployment
      api_base: https://example.openai.azure.com/
      api_key: os.environ/AZURE_KEY
      api_version: "2024-10-21"
  - model_name: local
    litellm_params:
      model: hosted_vllm/Qwen/Qwen3-8B
      api_base: http://127.0.0.1:8000/v1
      max_retries: 3
litellm_settings:
  drop_params: true
general_settings:
  master_key: sk-1234
  database_url: postgres://x
"#;

#[test]
fn a_litellm_config_parses() {
    let c = parse(LITELLM, &env).unwrap();
    assert_eq!(c.deployments.len(), 5);
    let d = &c.deployments;
    assert_eq!(
        (d[0].provider, d[0].dialect, d[0].upstream_model.as_str()),
        (Provider::OpenAi, Dialect::Chat, "gpt-4o")
    );
    assert_eq!(d[0].api_key.as_ref().unwrap().expose(), "sk-openai");
    assert_eq!(d[0].rpm, Some(60));
    assert_eq!(d[1].dialect, Dialect::Responses);
    assert_eq!(d[1].stream_timeout, Duration::from_secs_f64(12.5));
    assert!(d[1].prices.contains_key("input_cost_per_token"));
    assert_eq!(d[2].dialect, Dialect::Anthropic);
    assert_eq!(d[2].api_base, "https://api.anthropic.com");
    assert_eq!(d[3].api_base, "https://example.openai.azure.com");
    assert_eq!(d[4].upstream_model, "Qwen/Qwen3-8B");
    assert_eq!(c.master_key.as_ref().unwrap().expose(), "sk-1234");
    let w = c.warnings.join("\n");
    assert!(w.contains("ANTHROPIC_API_KEY is not set"), "{w}");
    assert!(
        w.contains("litellm_settings.drop_params is not supported yet"),
        "{w}"
    );
    assert!(!w.contains("general_settings.database_url"), "{w}");
    assert_eq!(c.database.url.as_ref().unwrap().expose(), "postgres://x");
    assert_eq!(d[4].max_retries, Some(3));
    assert!(!format!("{c:?}").contains("sk-1234"), "secrets never print");
}

#[test]
fn invalid_values_name_their_path() {
    let cases = [
        ("model_list: {}", "model_list"),
        (
            "model_list:\n  - model_name: x\n",
            "model_list[0].litellm_params",
        ),
        (
            "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x, timeout: -1}\n",
            "model_list[0].litellm_params.timeout",
        ),
        (
            "model_list:\n  - model_name: x\n    litellm_params: {model: hosted_vllm/x}\n",
            "model_list[0].litellm_params.api_base",
        ),
        (
            "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x}\n    model_info: {mode: embeddings}\n",
            "model_list[0].model_info.mode",
        ),
        (
            "router_settings: {routing_strategy: fastest}\n",
            "router_settings.routing_strategy",
        ),
        (
            "router_settings: {fallbacks: [{a: 3.5}]}\n",
            "router_settings.fallbacks[0].a",
        ),
        ("model_list: [\n", "(document)"),
    ];
    for (yaml, path) in cases {
        let e = parse(yaml, &env).unwrap_err();
        assert_eq!(e.path, path, "{yaml}: {e}");
    }
}

#[test]
fn wildcards_resolve_like_litellm() {
    let c = parse(
        "model_list:\n  - model_name: \"openai/*\"\n    litellm_params: {model: \"openai/*\"}\n",
        &env,
    )
    .unwrap();
    assert_eq!(
        c.deployments[0].resolve("openai/gpt-4.1").as_deref(),
        Some("gpt-4.1")
    );
    assert_eq!(c.deployments[0].resolve("gpt-4.1"), None);
    let e = embedded(&env);
    let gpt = e
        .deployments
        .iter()
        .find(|d| d.model_name == "gpt-*")
        .unwrap();
    assert_eq!(gpt.resolve("gpt-4o-mini").as_deref(), Some("gpt-4o-mini"));
    assert!(e.deployments.iter().all(|d| d.provider == Provider::OpenAi));
}

#[test]
fn embedded_default_without_keys_serves_nothing_but_starts() {
    let c = embedded(&|_: &str| None);
    assert!(c.deployments.is_empty());
    assert!(c.warnings[0].contains("no models"));
    assert_eq!(c.server.port, 4000);
}

/// A master key that is empty, or names an unset or empty variable, would silently open the
/// gateway: each is a start error naming what is missing.
#[test]
fn master_key_states_are_unambiguous() {
    let base = "model_list: []\ngeneral_settings:\n  master_key: ";
    for (value, needle) in [
        ("\"\"", "must not be empty"),
        ("\"  \"", "must not be empty"),
        ("os.environ/DRAGOMAN_TEST_UNSET", "DRAGOMAN_TEST_UNSET"),
    ] {
        let e = parse(&format!("{base}{value}\n"), &env).unwrap_err();
        assert_eq!(e.path, "general_settings.master_key");
        assert!(e.message.contains(needle), "{value}: {e}");
    }
    let c = parse(&format!("{base}os.environ/OPENAI_API_KEY\n"), &env).unwrap();
    assert_eq!(c.master_key.as_ref().map(|k| k.expose()), Some("sk-openai"));
    let c = parse("model_list: []\n", &env).unwrap();
    assert!(c.master_key.is_none());
    assert!(
        !c.server.host_set,
        "no host set: an open gateway stays on 127.0.0.1"
    );
    let c = parse(
        "model_list: []\ndragoman_settings:\n  host: 0.0.0.0\n",
        &env,
    )
    .unwrap();
    assert!(c.server.host_set);
}

/// A realistic LiteLLM config with a router section and entries dragoman does not serve yet:
/// it starts, serves the rest, and names every key it ignores.
const ROUTED: &str = r#"
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/gpt-4o, api_key: sk-a, weight: 3, order: 1, max_parallel_requests: 8}
    model_info: {base_model: azure/gpt-4o, max_input_tokens: 128000}
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o-eu, api_base: "https://eu.example", api_key: sk-b, api_version: "2024-10-21", rpm: 100}
  - model_name: sagemaker
    litellm_params: {model: sagemaker/jumpstart-llama, api_key: g}
  - model_name: images
    litellm_params: {model: openai/dall-e-3}
    model_info: {mode: image_generation}
  - model_name: small
    litellm_params: {model: openai/gpt-4o-mini}
litellm_settings:
  num_retries: 5
  fallbacks: [{gpt-4o: [small]}]
  success_callback: [langfuse]
router_settings:
  routing_strategy: latency-based-routing
  num_retries: 1
  allowed_fails: 2
  cooldown_time: 30
  allowed_fails_policy: {RateLimitErrorAllowedFails: 0, BadRequestErrorAllowedFails: 9}
  retry_policy: {TimeoutErrorRetries: 4}
  context_window_fallbacks: [{small: [gpt-4o]}]
  default_fallbacks: [small]
  model_group_alias: {gpt4: gpt-4o, hidden-one: {model: small, hidden: true}}
  redis_host: localhost
general_settings:
  background_health_checks: true
  health_check_interval: 60
"#;

#[test]
fn a_router_section_is_honoured_and_every_ignored_key_named() {
    let c = parse(ROUTED, &env).unwrap();
    let names: Vec<&str> = c
        .deployments
        .iter()
        .map(|d| d.model_name.as_str())
        .collect();
    assert_eq!(names, ["gpt-4o", "gpt-4o", "small"]);
    let d = &c.deployments[0];
    assert_eq!(
        (d.weight, d.order, d.max_parallel),
        (Some(3.0), Some(1), Some(8))
    );
    assert_eq!(d.base_model.as_deref(), Some("azure/gpt-4o"));
    let r = &c.router;
    assert_eq!(r.strategy, Strategy::LatencyBased);
    assert_eq!(
        r.num_retries, 1,
        "router_settings wins over litellm_settings"
    );
    assert_eq!(r.retries_for(FailClass::Timeout), 4);
    assert_eq!(r.retries_for(FailClass::Server), 1);
    assert_eq!(r.allowed_fails_for(FailClass::RateLimit), 0);
    assert_eq!(r.allowed_fails_for(FailClass::Server), 2);
    assert_eq!(r.cooldown_time, Duration::from_secs(30));
    assert_eq!(r.fallbacks, vec![("gpt-4o".into(), vec!["small".into()])]);
    assert_eq!(r.context_window_fallbacks.len(), 1);
    assert_eq!(r.default_fallbacks, ["small"]);
    assert_eq!(
        r.aliases,
        vec![
            ("gpt4".into(), "gpt-4o".into(), false),
            ("hidden-one".into(), "small".into(), true)
        ]
    );
    assert_eq!(r.health_check_interval, Some(Duration::from_secs(60)));
    let w = c.warnings.join("\n");
    for named in [
        "model_list[2]: skipped: `sagemaker/jumpstart-llama`",
        "model_list[3]: skipped: model_info.mode `image_generation`",
        "callback `langfuse` is off: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not both set",
        "router_settings.allowed_fails_policy.BadRequestErrorAllowedFails is ignored",
        "model_list[0].model_info.max_input_tokens is informational",
    ] {
        assert!(w.contains(named), "{named} missing from:\n{w}");
    }
    assert!(
        !w.contains("num_retries") && !w.contains("routing_strategy"),
        "{w}"
    );
}

#[test]
fn strict_refuses_what_it_would_skip() {
    let e = parse_with(ROUTED, &env, ParseOptions { strict: true }).unwrap_err();
    assert_eq!(e.path, "model_list[2]");
    assert!(e.message.contains("sagemaker"), "{e}");
}

#[test]
fn redis_comes_from_any_of_litellms_places() {
    let c = parse(ROUTED, &env).unwrap();
    assert_eq!(
        c.redis.as_ref().map(|r| r.url.expose()),
        Some("redis://localhost:6379")
    );
    let yaml = "model_list: []\nlitellm_settings:\n  cache: true\n  cache_params: {type: redis, host: r.internal, port: 6380, password: pw}\n";
    let c = parse(yaml, &env).unwrap();
    assert_eq!(
        c.redis.as_ref().map(|r| r.url.expose()),
        Some("redis://:pw@r.internal:6380")
    );
    // The same section turns the response cache on, shared through that Redis.
    assert!(c.cache.as_ref().is_some_and(|k| k.redis));
    let yaml = "model_list: []\ngeneral_settings:\n  redis_url: redis://a:1\nrouter_settings:\n  redis_host: b\ndragoman_settings:\n  redis_prefix: blue\n";
    let c = parse(yaml, &env).unwrap();
    let r = c.redis.unwrap();
    assert_eq!((r.url.expose(), r.prefix.as_str()), ("redis://a:1", "blue"));
    assert!(parse("model_list: []\n", &env).unwrap().redis.is_none());
}

#[test]
fn vertex_entries_take_litellms_keys_and_fallbacks() {
    let key = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../test_data/vertex/service-account.json"),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("dragoman-cfg-{:016x}", fastrand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key.json");
    std::fs::write(&path, &key).unwrap();
    let yaml = format!(
        r#"
model_list:
  - model_name: g
    litellm_params: {{model: vertex_ai/gemini-2.5-pro, vertex_project: p1, vertex_location: global, vertex_credentials: "{}"}}
  - model_name: c
    litellm_params: {{model: vertex_ai/claude-sonnet-4-5@20250929, vertex_location: us-east5}}
"#,
        path.display()
    );
    let path_s = path.display().to_string();
    let env = move |n: &str| (n == "GOOGLE_APPLICATION_CREDENTIALS").then(|| path_s.clone());
    let c = parse(&yaml, &env).unwrap();
    let (g, cl) = (&c.deployments[0], &c.deployments[1]);
    assert_eq!((g.provider, g.dialect), (Provider::Vertex, Dialect::Gemini));
    assert_eq!(g.api_base, "https://aiplatform.googleapis.com");
    assert_eq!(g.google.as_ref().unwrap().project, "p1");
    assert_eq!(
        cl.dialect,
        Dialect::Anthropic,
        "Claude on Vertex speaks Anthropic"
    );
    assert_eq!(cl.api_base, "https://us-east5-aiplatform.googleapis.com");
    let gc = cl.google.as_ref().unwrap();
    assert_eq!(
        gc.project, "dragoman-test",
        "the key's project when none is named"
    );
    assert!(gc.credentials.expose().contains("service_account"));
    assert!(!format!("{cl:?}").contains("PRIVATE KEY"), "never printed");

    // Without credentials anywhere the entry is a start error that says what is missing.
    let e = parse(
        "model_list:\n  - model_name: g\n    litellm_params: {model: vertex_ai/gemini-2.5-pro, vertex_project: p}\n",
        &|_: &str| None,
    )
    .unwrap_err();
    assert!(e.path.ends_with("vertex_credentials"), "{e}");
    assert!(e.message.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{e}");
}

fn fastrand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The LiteLLM configs that used to stop or shrink the gateway (Bedrock + Azure + embeddings;
/// Vertex + Gemini + Anthropic; vLLM + Responses + embeddings) now serve every entry.
#[test]
fn realistic_mixed_configs_serve_every_model() {
    let dir = std::env::temp_dir().join(format!("dragoman-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("sa.json");
    std::fs::write(
        &key,
        r#"{"type": "service_account", "project_id": "p1", "client_email": "a@p1.iam.gserviceaccount.com", "private_key": "x"}"#,
    )
    .unwrap();
    let configs = [
        r#"
model_list:
  - model_name: claude-sonnet
    litellm_params: {model: bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0, aws_region_name: us-east-1, aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID, aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY}
  - model_name: nova
    litellm_params: {model: bedrock/converse/amazon.nova-pro-v1:0, aws_region_name: eu-west-1}
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o, api_base: "https://x.openai.azure.com", api_key: k, api_version: "2024-10-21"}
  - model_name: titan
    litellm_params: {model: bedrock/amazon.titan-embed-text-v2:0}
    model_info: {mode: embedding}
  - model_name: ada
    litellm_params: {model: azure/text-embedding-3-large, api_base: "https://x.openai.azure.com", api_key: k, api_version: "2024-10-21"}
    model_info: {mode: embedding}
"#
        .to_owned(),
        format!(
            r#"
model_list:
  - model_name: gemini-pro
    litellm_params: {{model: vertex_ai/gemini-2.5-pro, vertex_project: p1, vertex_location: us-central1, vertex_credentials: "{}"}}
  - model_name: gemini-flash
    litellm_params: {{model: gemini/gemini-2.5-flash, api_key: g}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-sonnet-4-5, api_key: a}}
  - model_name: vertex-embed
    litellm_params: {{model: vertex_ai/text-embedding-005, vertex_project: p1, vertex_credentials: "{}"}}
    model_info: {{mode: embedding}}
"#,
            key.display(),
            key.display()
        ),
        r#"
model_list:
  - model_name: llama
    litellm_params: {model: hosted_vllm/meta-llama/Llama-3.1-8B-Instruct, api_base: "http://vllm:8000/v1"}
  - model_name: o4-mini
    litellm_params: {model: openai/o4-mini, api_key: k}
    model_info: {mode: responses}
  - model_name: bge
    litellm_params: {model: hosted_vllm/BAAI/bge-m3, api_base: "http://vllm:8000/v1"}
    model_info: {mode: embedding}
"#
        .to_owned(),
    ];
    let env = |n: &str| match n {
        "AWS_ACCESS_KEY_ID" => Some("AKIDENV".to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some("env-secret".to_owned()),
        _ => None,
    };
    for yaml in &configs {
        let c = parse(yaml, &env).unwrap();
        let entries = yaml.matches("model_name:").count();
        assert_eq!(c.deployments.len(), entries, "{:?}", c.warnings);
        assert!(
            c.warnings.iter().all(|w| !w.contains("skipped")),
            "{:?}",
            c.warnings
        );
    }
    let c = parse(&configs[0], &env).unwrap();
    let d = &c.deployments;
    assert_eq!(
        (d[0].provider, d[0].dialect),
        (Provider::Bedrock, Dialect::Anthropic)
    );
    assert_eq!(
        d[0].api_base,
        "https://bedrock-runtime.us-east-1.amazonaws.com"
    );
    let aws = d[0].aws.as_ref().unwrap();
    assert_eq!(aws.access_key_id.as_deref(), Some("AKIDENV"));
    assert_eq!(
        aws.secret_access_key.as_ref().unwrap().expose(),
        "env-secret"
    );
    assert_eq!(
        (d[1].dialect, d[1].upstream_model.as_str()),
        (Dialect::Bedrock, "amazon.nova-pro-v1:0")
    );
    assert_eq!(
        d[1].api_base,
        "https://bedrock-runtime.eu-west-1.amazonaws.com"
    );
    assert!(d[3].embedding && d[4].embedding && !d[0].embedding);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bedrock_model_strings_pick_the_api_and_region_as_litellm_does() {
    let env = |n: &str| match n {
        "AWS_REGION" => Some("ap-northeast-1".to_owned()),
        "AWS_BEARER_TOKEN_BEDROCK" => Some("bedrock-api-key".to_owned()),
        _ => None,
    };
    let yaml = r#"
model_list:
  - model_name: a
    litellm_params: {model: bedrock/anthropic.claude-3-haiku-20240307-v1:0}
  - model_name: b
    litellm_params: {model: bedrock/converse/anthropic.claude-3-haiku-20240307-v1:0}
  - model_name: c
    litellm_params: {model: bedrock/meta.llama3-70b-instruct-v1:0}
  - model_name: d
    litellm_params: {model: "bedrock/arn:aws:bedrock:eu-central-1:123456789012:application-inference-profile/abc", aws_region_name: us-east-1}
  - model_name: e
    litellm_params: {model: bedrock/invoke/meta.llama3-70b-instruct-v1:0}
  - model_name: f
    litellm_params: {model: bedrock/amazon.nova-micro-v1:0, aws_bedrock_runtime_endpoint: "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com/"}
"#;
    let c = parse(yaml, &env).unwrap();
    let d = &c.deployments;
    assert_eq!(d.len(), 5, "{:?}", c.warnings);
    assert_eq!(d[0].dialect, Dialect::Anthropic);
    assert_eq!(
        d[0].api_base,
        "https://bedrock-runtime.ap-northeast-1.amazonaws.com"
    );
    assert_eq!(
        d[0].aws.as_ref().unwrap().bearer.as_ref().unwrap().expose(),
        "bedrock-api-key"
    );
    assert_eq!(d[1].dialect, Dialect::Bedrock);
    assert_eq!(d[2].dialect, Dialect::Bedrock);
    // An ARN's own region wins.
    assert_eq!(
        d[3].api_base,
        "https://bedrock-runtime.eu-central-1.amazonaws.com"
    );
    assert_eq!(d[3].aws.as_ref().unwrap().region, "eu-central-1");
    // InvokeModel is served for Claude only: Llama through invoke is skipped, and says why.
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("InvokeModel is served for Claude models only")),
        "{:?}",
        c.warnings
    );
    assert_eq!(
        d[4].api_base,
        "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com"
    );
}

#[test]
fn litellms_cache_settings_are_read() {
    let yaml = r#"
model_list:
  - model_name: m
    litellm_params: {model: openai/gpt-4o, api_key: k}
litellm_settings:
  cache: true
  cache_params: {type: redis, host: 127.0.0.1, port: 6380, ttl: 120, namespace: team-a, supported_call_types: [acompletion, aresponses, aembedding]}
"#;
    let c = parse(yaml, &|_: &str| None).unwrap();
    let cache = c.cache.unwrap();
    assert!(cache.redis);
    assert_eq!(cache.ttl, Duration::from_secs(120));
    assert_eq!(cache.namespace.as_deref(), Some("team-a"));
    assert_eq!(cache.dialects, vec![Dialect::Chat, Dialect::Responses]);
    assert!(
        c.warnings.iter().any(|w| w.contains("aembedding")),
        "{:?}",
        c.warnings
    );
    assert_eq!(c.redis.unwrap().url.expose(), "redis://127.0.0.1:6380");
    // Off unless `cache: true`; `type: redis` needs a Redis.
    let off = parse(&yaml.replace("cache: true", "cache: false"), &|_: &str| {
        None
    })
    .unwrap();
    assert!(off.cache.is_none());
    let e = parse(
        "model_list: []\nlitellm_settings:\n  cache: true\n  cache_params: {type: redis}\n",
        &|_: &str| None,
    )
    .unwrap_err();
    assert!(e.message.contains("needs a Redis"), "{e}");
    let e = parse(
        "model_list: []\nlitellm_settings:\n  cache: true\n  cache_params: {type: s3}\n",
        &|_: &str| None,
    )
    .unwrap_err();
    assert!(e.message.contains("s3"), "{e}");
}
