//! The workload: models, tenants, tools and rates, from a TOML file or the
//! built-in default (`deploy/scenarios/default.toml`).

use std::fmt;
use std::path::Path;

use serde::Deserialize;

/// The default scenario, shipped as a file users can copy.
pub(crate) const DEFAULT_TOML: &str = include_str!("../../deploy/scenarios/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    pub models: Vec<Model>,
    pub tenants: Vec<Tenant>,
    pub tools: Vec<Tool>,
    pub safety_categories: Vec<String>,
    pub endpoints: Vec<String>,
    pub rates: Rates,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Model {
    pub provider: String,
    pub name: String,
    pub weight: f64,
    pub latency_ms_median: f64,
    pub latency_ms_p99: f64,
    pub ttft_ms_median: f64,
    pub input_tokens_median: f64,
    pub output_tokens_median: f64,
    pub usd_per_1k_input: f64,
    pub usd_per_1k_output: f64,
    pub error_rate: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tenant {
    pub name: String,
    pub weight: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tool {
    pub name: String,
    pub latency_ms_median: f64,
    pub latency_ms_p99: f64,
    pub error_rate: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rates {
    pub tool_calls_per_turn: f64,
    pub unsafe_rate: f64,
    pub safety_error_rate: f64,
    pub api_error_rate: f64,
    pub max_retries: u32,
}

/// Why a scenario cannot be used.
#[derive(Debug)]
pub(crate) enum ScenarioError {
    Read {
        path: String,
        source: std::io::Error,
    },
    Parse {
        path: String,
        message: String,
    },
    Invalid {
        path: String,
        message: String,
    },
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Read { path, source } => write!(f, "cannot read scenario {path}: {source}"),
            ScenarioError::Parse { path, message } => write!(
                f,
                "scenario {path} is not valid TOML for agent-sim:\n{message}\n(see deploy/scenarios/default.toml for the format)"
            ),
            ScenarioError::Invalid { path, message } => write!(f, "scenario {path}: {message}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    pub(crate) fn default_scenario() -> Scenario {
        Scenario::parse("<built-in default>", DEFAULT_TOML).expect("the built-in scenario is valid")
    }

    pub(crate) fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        Scenario::parse(&shown, &text)
    }

    pub(crate) fn parse(path: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        scenario
            .validate()
            .map_err(|message| ScenarioError::Invalid {
                path: path.to_string(),
                message,
            })?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), String> {
        let non_empty = |what: &str, n: usize| {
            if n == 0 {
                Err(format!("needs at least one entry in `{what}`"))
            } else {
                Ok(())
            }
        };
        non_empty("models", self.models.len())?;
        non_empty("tenants", self.tenants.len())?;
        non_empty("tools", self.tools.len())?;
        non_empty("safety_categories", self.safety_categories.len())?;
        non_empty("endpoints", self.endpoints.len())?;
        let rate = |what: String, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{what} = {v} is not a probability between 0.0 and 1.0"
                ))
            }
        };
        let positive = |what: String, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("{what} = {v} must be a positive number"))
            }
        };
        for m in &self.models {
            let field = |f: &str| format!("models[{}].{f}", m.name);
            positive(field("weight"), m.weight)?;
            positive(field("latency_ms_median"), m.latency_ms_median)?;
            positive(field("ttft_ms_median"), m.ttft_ms_median)?;
            positive(field("input_tokens_median"), m.input_tokens_median)?;
            positive(field("output_tokens_median"), m.output_tokens_median)?;
            rate(field("error_rate"), m.error_rate)?;
            if m.latency_ms_p99 < m.latency_ms_median {
                return Err(format!("{} is below the median", field("latency_ms_p99")));
            }
            if m.usd_per_1k_input < 0.0 || m.usd_per_1k_output < 0.0 {
                return Err(format!(
                    "{} prices must not be negative",
                    field("usd_per_1k_*")
                ));
            }
        }
        for t in &self.tenants {
            positive(format!("tenants[{}].weight", t.name), t.weight)?;
        }
        for t in &self.tools {
            positive(
                format!("tools[{}].latency_ms_median", t.name),
                t.latency_ms_median,
            )?;
            rate(format!("tools[{}].error_rate", t.name), t.error_rate)?;
            if t.latency_ms_p99 < t.latency_ms_median {
                return Err(format!(
                    "tools[{}].latency_ms_p99 is below the median",
                    t.name
                ));
            }
        }
        let r = &self.rates;
        rate("rates.unsafe_rate".into(), r.unsafe_rate)?;
        rate("rates.safety_error_rate".into(), r.safety_error_rate)?;
        rate("rates.api_error_rate".into(), r.api_error_rate)?;
        if !(0.0..=8.0).contains(&r.tool_calls_per_turn) {
            return Err("rates.tool_calls_per_turn must be between 0 and 8".into());
        }
        if r.max_retries > 10 {
            return Err("rates.max_retries must be at most 10".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenario_is_valid() {
        let s = Scenario::default_scenario();
        assert_eq!(s.tenants.len(), 3);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = Scenario::parse("x.toml", "models = 3")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.toml") && err.contains("not valid TOML"),
            "{err}"
        );
        let bad_rate = DEFAULT_TOML.replace("unsafe_rate = 0.01", "unsafe_rate = 1.5");
        let err = Scenario::parse("y.toml", &bad_rate)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rates.unsafe_rate = 1.5"), "{err}");
        let unknown = format!("{DEFAULT_TOML}\nsurprise = 1\n");
        let err = Scenario::parse("z.toml", &unknown).unwrap_err().to_string();
        assert!(err.contains("surprise"), "{err}");
    }
}
