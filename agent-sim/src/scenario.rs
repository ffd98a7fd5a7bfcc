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

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScenarioError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

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
        for m in &self.models {
            let field = |f: &str| format!("models[{}].{f}", m.name);
            WEIGHT.check(field("weight"), m.weight)?;
            LATENCY_MS.check(field("latency_ms_median"), m.latency_ms_median)?;
            LATENCY_MS.check(field("latency_ms_p99"), m.latency_ms_p99)?;
            at_least_median(
                field("latency_ms_p99"),
                m.latency_ms_p99,
                m.latency_ms_median,
            )?;
            LATENCY_MS.check(field("ttft_ms_median"), m.ttft_ms_median)?;
            TOKENS.check(field("input_tokens_median"), m.input_tokens_median)?;
            TOKENS.check(field("output_tokens_median"), m.output_tokens_median)?;
            PRICE.check(field("usd_per_1k_input"), m.usd_per_1k_input)?;
            PRICE.check(field("usd_per_1k_output"), m.usd_per_1k_output)?;
            PROBABILITY.check(field("error_rate"), m.error_rate)?;
        }
        for t in &self.tenants {
            WEIGHT.check(format!("tenants[{}].weight", t.name), t.weight)?;
        }
        for t in &self.tools {
            let field = |f: &str| format!("tools[{}].{f}", t.name);
            LATENCY_MS.check(field("latency_ms_median"), t.latency_ms_median)?;
            LATENCY_MS.check(field("latency_ms_p99"), t.latency_ms_p99)?;
            at_least_median(
                field("latency_ms_p99"),
                t.latency_ms_p99,
                t.latency_ms_median,
            )?;
            PROBABILITY.check(field("error_rate"), t.error_rate)?;
        }
        let r = &self.rates;
        PROBABILITY.check("rates.unsafe_rate".into(), r.unsafe_rate)?;
        PROBABILITY.check("rates.safety_error_rate".into(), r.safety_error_rate)?;
        PROBABILITY.check("rates.api_error_rate".into(), r.api_error_rate)?;
        TOOL_CALLS.check("rates.tool_calls_per_turn".into(), r.tool_calls_per_turn)?;
        if r.max_retries > 10 {
            return Err(format!(
                "rates.max_retries = {} must be at most 10",
                r.max_retries
            ));
        }
        Ok(())
    }
}

/// The values a numeric scenario field accepts: finite, within `min..=max`
/// (or above `min` when `min_exclusive`). The bounds keep every value the
/// simulator derives from a field (log-normal draws up to many times the
/// 99th percentile, token totals over a long run) representable.
struct Range {
    min: f64,
    min_exclusive: bool,
    max: f64,
    what: &'static str,
}

impl Range {
    fn check(&self, field: String, value: f64) -> Result<(), String> {
        let above_min = if self.min_exclusive {
            value > self.min
        } else {
            value >= self.min
        };
        // NaN fails both comparisons, infinities the upper or lower one.
        if above_min && value <= self.max {
            return Ok(());
        }
        let low = if self.min_exclusive {
            "above"
        } else {
            "at least"
        };
        Err(format!(
            "{field} = {value:?} must be {what} {low} {min} and at most {max}",
            what = self.what,
            min = self.min,
            max = self.max
        ))
    }
}

/// A relative weight.
const WEIGHT: Range = Range {
    min: 0.0,
    min_exclusive: true,
    max: 1e6,
    what: "a weight",
};
/// A latency in milliseconds: above 1 µs, at most one hour.
const LATENCY_MS: Range = Range {
    min: 0.001,
    min_exclusive: false,
    max: 3_600_000.0,
    what: "a latency in milliseconds",
};
/// Tokens of one call: at most ten million.
const TOKENS: Range = Range {
    min: 0.0,
    min_exclusive: true,
    max: 1e7,
    what: "a token count",
};
/// A price in US dollars per thousand tokens.
const PRICE: Range = Range {
    min: 0.0,
    min_exclusive: false,
    max: 1_000.0,
    what: "a price in USD per 1k tokens",
};
const PROBABILITY: Range = Range {
    min: 0.0,
    min_exclusive: false,
    max: 1.0,
    what: "a probability",
};
const TOOL_CALLS: Range = Range {
    min: 0.0,
    min_exclusive: false,
    max: 8.0,
    what: "a mean number of calls",
};

fn at_least_median(field: String, p99: f64, median: f64) -> Result<(), String> {
    if p99 >= median {
        Ok(())
    } else {
        Err(format!("{field} = {p99} is below the median ({median})"))
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
        let p99 = "latency_ms_p99 = 6000.0";
        assert!(DEFAULT_TOML.contains(p99));
        for (bad, value) in [
            ("latency_ms_p99 = inf", "inf"),
            ("latency_ms_p99 = 1e300", "1e300"),
            ("latency_ms_p99 = nan", "NaN"),
            ("latency_ms_p99 = -1.0", "-1.0"),
        ] {
            let err = Scenario::parse("p.toml", &DEFAULT_TOML.replacen(p99, bad, 1))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("models[gpt-4o].latency_ms_p99 = {value} must be")),
                "{bad}: {err}"
            );
        }
        for (field, old, bad) in [
            ("latency_ms_median", "latency_ms_median = 900.0", "1e-300"),
            (
                "input_tokens_median",
                "input_tokens_median = 1400.0",
                "4e18",
            ),
            ("weight", "weight = 4.0", "nan"),
            ("usd_per_1k_input", "usd_per_1k_input = 0.0025", "inf"),
            ("error_rate", "error_rate = 0.02", "nan"),
        ] {
            assert!(DEFAULT_TOML.contains(old), "{old}");
            let text = DEFAULT_TOML.replacen(old, &format!("{field} = {bad}"), 1);
            let err = Scenario::parse("f.toml", &text).unwrap_err().to_string();
            assert!(
                err.contains(&format!("models[gpt-4o].{field} = ")) && err.contains("must be"),
                "{field} = {bad}: {err}"
            );
        }
        let unknown = format!("{DEFAULT_TOML}\nsurprise = 1\n");
        let err = Scenario::parse("z.toml", &unknown).unwrap_err().to_string();
        assert!(err.contains("surprise"), "{err}");
    }
}
