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
    assert!(w.contains("litellm_settings is not supported yet"), "{w}");
    assert!(!w.contains("general_settings.database_url"), "{w}");
    assert_eq!(c.database.url.as_ref().unwrap().expose(), "postgres://x");
    assert!(
        w.contains("model_list[4].litellm_params.max_retries"),
        "{w}"
    );
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
            "model_list:\n  - model_name: x\n    litellm_params: {model: bedrock/x}\n",
            "model_list[0].litellm_params.model",
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
            "model_list:\n  - model_name: x\n    litellm_params: {model: openai/x}\n    model_info: {mode: embedding}\n",
            "model_list[0].model_info.mode",
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
