//! The `NVIDIA_REQUIRE_*` rule language of the NVIDIA container runtime,
//! re-evaluated here because CDI-mode runtimes skip it.
//!
//! Grammar (as libnvidia-container implements it): the expression is split on
//! spaces into alternatives (OR); each alternative is split on commas into
//! conditions (AND). A condition is `key op value` with op one of
//! `= != < <= > >=` and key one of `cuda` (the driver's CUDA version),
//! `driver` (the driver version), `arch` (compute capability, `9.0`) and
//! `brand` (`tesla`, `nvidia`, ...; only `=` and `!=`, case-insensitive).
//! Versions compare numerically ([`DottedVersion`]). The runtime checks the
//! expression once per visible GPU; so do we.

use crate::compat::DottedVersion;
use std::fmt;

/// A key the rule language knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// The CUDA version the driver supports.
    Cuda,
    /// The driver (NVRM) version.
    Driver,
    /// The GPU's compute capability.
    Arch,
    /// The GPU's brand as NVML reports it.
    Brand,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::Cuda => "cuda",
            Key::Driver => "driver",
            Key::Arch => "arch",
            Key::Brand => "brand",
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// One `key op value` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// What is compared.
    pub key: Key,
    /// How.
    pub op: Op,
    /// Against what (a version, or a brand name).
    pub value: String,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.key.name(), self.op.as_str(), self.value)
    }
}

/// A parsed expression: alternatives of conjunctions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// OR over these; each is an AND over its conditions.
    pub alternatives: Vec<Vec<Condition>>,
}

/// Why an expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The condition has no operator, or an operator the language lacks.
    #[error("`{condition}` is not a condition: expected KEY OP VALUE with OP one of = != < <= > >= (for example cuda>=12.8)")]
    BadCondition {
        /// The offending text.
        condition: String,
    },
    /// The key is not cuda, driver, arch or brand.
    #[error("`{condition}` uses the unknown key `{key}`: expected cuda, driver, arch or brand")]
    UnknownKey {
        /// The offending condition.
        condition: String,
        /// Its key.
        key: String,
    },
    /// A version key compared with something that is not a version.
    #[error(
        "`{condition}` compares {key} with `{value}`, which is not a version (digits and dots)"
    )]
    BadVersion {
        /// The offending condition.
        condition: String,
        /// Its key.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// `brand` with an ordering operator.
    #[error("`{condition}`: brand only supports = and !=")]
    BrandOrder {
        /// The offending condition.
        condition: String,
    },
}

fn parse_condition(text: &str) -> Result<Condition, RuleError> {
    let bad = || RuleError::BadCondition {
        condition: text.to_string(),
    };
    let op_start = text.find(['<', '>', '=', '!']).ok_or_else(bad)?;
    if op_start == 0 {
        return Err(bad());
    }
    let rest = &text[op_start..];
    let op_len = rest.bytes().take_while(|b| b"<>=!".contains(b)).count();
    let op = match &rest[..op_len] {
        "=" => Op::Eq,
        "!=" => Op::Ne,
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        _ => return Err(bad()),
    };
    let value = &rest[op_len..];
    if value.is_empty() {
        return Err(bad());
    }
    let key_text = &text[..op_start];
    let key = match key_text.to_ascii_lowercase().as_str() {
        "cuda" => Key::Cuda,
        "driver" => Key::Driver,
        "arch" => Key::Arch,
        "brand" => Key::Brand,
        _ => {
            return Err(RuleError::UnknownKey {
                condition: text.to_string(),
                key: key_text.to_string(),
            })
        }
    };
    match key {
        Key::Brand if !matches!(op, Op::Eq | Op::Ne) => {
            return Err(RuleError::BrandOrder {
                condition: text.to_string(),
            });
        }
        Key::Brand => {}
        _ => {
            if DottedVersion::parse(value).is_err() {
                return Err(RuleError::BadVersion {
                    condition: text.to_string(),
                    key: key.name(),
                    value: value.to_string(),
                });
            }
        }
    }
    Ok(Condition {
        key,
        op,
        value: value.to_string(),
    })
}

/// Parses an expression. An empty expression is satisfied by anything.
pub fn parse(text: &str) -> Result<Expr, RuleError> {
    let mut alternatives = Vec::new();
    // The runtime splits on single spaces and skips empty pieces; splitting on
    // any whitespace is the same for every expression it accepts.
    for alt in text.split_whitespace() {
        let mut conds = Vec::new();
        for cond in alt.split(',').filter(|c| !c.is_empty()) {
            conds.push(parse_condition(cond)?);
        }
        if !conds.is_empty() {
            alternatives.push(conds);
        }
    }
    Ok(Expr { alternatives })
}

/// What is known about one GPU and its driver.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Driver CUDA version, e.g. `13.0`.
    pub cuda: Option<String>,
    /// Driver version, e.g. `580.159.04`.
    pub driver: Option<String>,
    /// Compute capability, e.g. `9.0`.
    pub arch: Option<String>,
    /// Brand in the rule language's spelling (`tesla`, `nvidia`, ...).
    pub brand: Option<String>,
}

/// The result of evaluating an expression against [`Facts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether some alternative held.
    pub satisfied: bool,
    /// Conditions that could not be decided because a fact was unknown
    /// (they count as false, as an unsatisfied condition would).
    pub unknown: Vec<String>,
}

fn holds(cond: &Condition, facts: &Facts) -> Option<bool> {
    let fact = match cond.key {
        Key::Cuda => facts.cuda.as_deref(),
        Key::Driver => facts.driver.as_deref(),
        Key::Arch => facts.arch.as_deref(),
        Key::Brand => facts.brand.as_deref(),
    }?;
    if cond.key == Key::Brand {
        let equal = fact.eq_ignore_ascii_case(&cond.value);
        return Some(if cond.op == Op::Eq { equal } else { !equal });
    }
    let have = DottedVersion::parse(fact).ok()?;
    let want = DottedVersion::parse(&cond.value).ok()?;
    let ord = have.compare(&want);
    use std::cmp::Ordering::*;
    Some(match cond.op {
        Op::Eq => ord == Equal,
        Op::Ne => ord != Equal,
        Op::Lt => ord == Less,
        Op::Le => ord != Greater,
        Op::Gt => ord == Greater,
        Op::Ge => ord != Less,
    })
}

impl Expr {
    /// Evaluates the expression (OR of ANDs).
    pub fn evaluate(&self, facts: &Facts) -> Outcome {
        let mut unknown = Vec::new();
        if self.alternatives.is_empty() {
            return Outcome {
                satisfied: true,
                unknown,
            };
        }
        for alt in &self.alternatives {
            let mut all = true;
            for cond in alt {
                match holds(cond, facts) {
                    Some(true) => {}
                    Some(false) => {
                        all = false;
                        break;
                    }
                    None => {
                        unknown.push(cond.to_string());
                        all = false;
                        break;
                    }
                }
            }
            if all {
                return Outcome {
                    satisfied: true,
                    unknown,
                };
            }
        }
        unknown.sort();
        unknown.dedup();
        Outcome {
            satisfied: false,
            unknown,
        }
    }

    /// The first alternative, as the runtime quotes it in its error message.
    pub fn first_alternative(&self) -> String {
        self.alternatives
            .first()
            .map(|alt| {
                alt.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    }
}

/// The rule language's spelling of an NVML brand (`nvmlBrandType_t` value).
pub fn brand_name(nvml_brand: u32) -> &'static str {
    match nvml_brand {
        1 => "quadro",
        2 => "tesla",
        3 => "nvs",
        4 => "grid",
        5 => "geforce",
        6 => "titan",
        7 => "vapps",
        8 => "vpc",
        9 => "vcs",
        10 => "vws",
        11 => "cloudgaming",
        12 => "quadrortx",
        13 => "nvidiartx",
        14 => "nvidia",
        15 => "geforcertx",
        16 => "titanrtx",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(cuda: &str, driver: &str, arch: &str, brand: &str) -> Facts {
        Facts {
            cuda: Some(cuda.into()),
            driver: Some(driver.into()),
            arch: Some(arch.into()),
            brand: Some(brand.into()),
        }
    }

    // The value the nvidia/cuda:12.8 images carry (shortened).
    const CUDA_128: &str = "cuda>=12.8 brand=unknown,driver>=470,driver<471 brand=tesla,driver>=535,driver<536 brand=tesla,driver>=550,driver<551";

    #[test]
    fn space_is_or_comma_is_and() {
        let e = parse(CUDA_128).unwrap();
        assert_eq!(e.alternatives.len(), 4);
        assert_eq!(e.alternatives[1].len(), 3);
        // New driver: first alternative.
        assert!(
            e.evaluate(&facts("13.0", "580.159.04", "9.0", "nvidia"))
                .satisfied
        );
        // R535 tesla: CUDA 12.2 only, but the LTS branch alternative holds.
        assert!(
            e.evaluate(&facts("12.2", "535.161.08", "8.0", "tesla"))
                .satisfied
        );
        // R535 geforce: no alternative holds.
        let out = e.evaluate(&facts("12.2", "535.161.08", "8.6", "geforce"));
        assert!(!out.satisfied);
        assert!(out.unknown.is_empty());
        assert_eq!(e.first_alternative(), "cuda>=12.8");
    }

    #[test]
    fn brand_is_case_insensitive_and_arch_is_a_version() {
        let e = parse("brand=Tesla,arch>=8.0").unwrap();
        assert!(
            e.evaluate(&facts("12.8", "570.1", "9.0", "tesla"))
                .satisfied
        );
        assert!(
            !e.evaluate(&facts("12.8", "570.1", "7.5", "tesla"))
                .satisfied
        );
        let e = parse("arch=9.0").unwrap();
        assert!(e.evaluate(&facts("12.8", "570.1", "9.0.0", "x")).satisfied);
        assert!(!e.evaluate(&facts("12.8", "570.1", "9.1", "x")).satisfied);
        let e = parse("brand!=geforce").unwrap();
        assert!(
            e.evaluate(&facts("12.8", "570.1", "9.0", "tesla"))
                .satisfied
        );
    }

    #[test]
    fn empty_expression_is_satisfied() {
        assert!(parse("").unwrap().evaluate(&Facts::default()).satisfied);
        assert!(parse("  , ").unwrap().evaluate(&Facts::default()).satisfied);
    }

    #[test]
    fn unknown_facts_count_as_false_and_are_reported() {
        let e = parse("brand=tesla,driver>=535 cuda>=12.0").unwrap();
        let f = Facts {
            cuda: Some("11.8".into()),
            driver: Some("535.1".into()),
            arch: None,
            brand: None,
        };
        let out = e.evaluate(&f);
        assert!(!out.satisfied);
        assert_eq!(out.unknown, vec!["brand=tesla".to_string()]);
    }

    #[test]
    fn malformed_expressions_are_errors_with_the_offending_text() {
        assert!(matches!(
            parse("cuda>>12"),
            Err(RuleError::BadCondition { .. })
        ));
        assert!(matches!(parse("cuda"), Err(RuleError::BadCondition { .. })));
        assert!(matches!(parse(">=12"), Err(RuleError::BadCondition { .. })));
        assert!(matches!(
            parse("cuda>="),
            Err(RuleError::BadCondition { .. })
        ));
        let e = parse("gpu>=1").unwrap_err();
        assert!(e.to_string().contains("unknown key `gpu`"), "{e}");
        let e = parse("cuda>=twelve").unwrap_err();
        assert!(e.to_string().contains("`twelve`"), "{e}");
        assert!(matches!(
            parse("brand>=tesla"),
            Err(RuleError::BrandOrder { .. })
        ));
    }

    #[test]
    fn every_operator() {
        let f = facts("12.8", "570.86.10", "9.0", "tesla");
        for (expr, want) in [
            ("cuda=12.8", true),
            ("cuda!=12.8", false),
            ("cuda<12.9", true),
            ("cuda<=12.8", true),
            ("cuda>12.8", false),
            ("cuda>=12.8.0", true),
            ("driver>=570", true),
            ("driver<570.86.10", false),
        ] {
            assert_eq!(parse(expr).unwrap().evaluate(&f).satisfied, want, "{expr}");
        }
    }

    #[test]
    fn brand_names_follow_nvml_numbering() {
        assert_eq!(brand_name(2), "tesla");
        assert_eq!(brand_name(14), "nvidia");
        assert_eq!(brand_name(0), "unknown");
        assert_eq!(brand_name(99), "unknown");
    }
}
