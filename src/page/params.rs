//! The page's URL parameters, read from whatever gives a parameter's value by name
//! (`URLSearchParams` in the browser, a map in the tests): the model's source, the
//! engine, the precision, the number of photo encoders and how long they stay idle.
//! Each bad value is one plain sentence saying what is allowed.
//!
//! It must not read the URL itself. Reference: DESIGN.md "Contract: the page" (URL
//! parameters).

use crate::encode::{Backend, PrecisionChoice};
use crate::hub::ModelSource;
use crate::ingest;

/// The page's URL parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub source: ModelSource,
    /// The URL names the model (hub, model or revision): download without asking.
    pub explicit_source: bool,
    pub workers: Option<usize>,
    pub backend: Backend,
    pub precision: PrecisionChoice,
    /// Seconds the photo encoders stay loaded when idle (`idle_s`).
    pub idle_release_s: u32,
}

impl Params {
    /// Reads the parameters `get` gives by name.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let source = ModelSource::from_params(
            get("hub").as_deref(),
            get("model").as_deref(),
            get("revision").as_deref(),
            get("chunk_kb").as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let explicit_source = ["hub", "model", "revision"]
            .iter()
            .any(|p| get(p).is_some_and(|v| !v.trim().is_empty()));
        let backend = Backend::from_param(get("backend").as_deref())?;
        let precision = PrecisionChoice::from_param(get("precision").as_deref())?;
        let idle_release_s = ingest::idle_release_s(get("idle_s").as_deref())?;
        let workers = workers(get("workers").as_deref())?;
        Ok(Self {
            source,
            explicit_source,
            workers,
            backend,
            precision,
            idle_release_s,
        })
    }
}

/// `workers=N`: none or `auto` lets the page choose.
fn workers(param: Option<&str>) -> Result<Option<usize>, String> {
    match param.map(str::trim) {
        None | Some("") | Some("auto") => Ok(None),
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=ingest::MAX_WORKERS).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "workers must be a whole number from 1 to {}, not \"{n}\".",
                ingest::MAX_WORKERS
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Params, String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Params::read(|name| map.get(name).cloned())
    }

    #[test]
    fn no_parameters_is_the_default_model_on_auto() -> Result<(), String> {
        let p = read(&[])?;
        assert_eq!(p.source.model, crate::hub::DEFAULT_MODEL);
        assert!(!p.explicit_source);
        assert_eq!(p.workers, None);
        assert_eq!(p.backend, Backend::Auto);
        assert_eq!(p.precision, PrecisionChoice::Auto);
        assert_eq!(p.idle_release_s, ingest::IDLE_RELEASE_S);
        Ok(())
    }

    #[test]
    fn naming_a_model_asks_for_it() -> Result<(), String> {
        assert!(read(&[("model", "org/clip")])?.explicit_source);
        assert!(!read(&[("model", "  ")])?.explicit_source);
        Ok(())
    }

    #[test]
    fn workers_is_a_number_in_range_or_auto() -> Result<(), String> {
        assert_eq!(read(&[("workers", "3")])?.workers, Some(3));
        assert_eq!(read(&[("workers", "auto")])?.workers, None);
        let err = read(&[("workers", "0")]).err().unwrap_or_default();
        assert!(
            err.starts_with("workers must be a whole number from 1 to 16"),
            "{err}"
        );
        assert!(read(&[("workers", "many")]).is_err());
        Ok(())
    }

    #[test]
    fn engine_precision_and_idle_time_are_read() -> Result<(), String> {
        let p = read(&[("backend", "cpu"), ("precision", "int8"), ("idle_s", "5")])?;
        assert_eq!(p.backend, Backend::Cpu);
        assert_eq!(p.precision, PrecisionChoice::Int8);
        assert_eq!(p.idle_release_s, 5);
        assert!(read(&[("backend", "quantum")]).is_err());
        assert!(read(&[("idle_s", "0")]).is_err());
        Ok(())
    }
}
