//! Choosing classes of a labeled data set: `0-7`, `8,9`, `cat,dog` — so one labeled set can
//! give a task A and a task B.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// Parses a class list against `names` (the data set's class names, in label order): items
/// separated by commas, each a class name, a label index, or a range `a-b` of indices.
/// Returns label indices in the order given, without repeats.
pub fn parse_classes(spec: &str, names: &[String]) -> Result<Vec<u32>> {
    let bad = |reason: String| DataError::BadClasses { spec: spec.to_string(), reason, available: names.join(",") };
    let mut out: Vec<u32> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let found: Vec<u32> = if let Some(i) = names.iter().position(|n| n == item) {
            vec![i as u32]
        } else if let Some((a, b)) = item.split_once('-') {
            let (a, b) = match (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
                (Ok(a), Ok(b)) if a <= b => (a, b),
                _ => return Err(bad(format!("`{item}` is neither a class name nor a range of indices like 0-7"))),
            };
            (a..=b).collect()
        } else {
            match item.parse::<u32>() {
                Ok(i) => vec![i],
                Err(_) => return Err(bad(format!("no class is called `{item}`"))),
            }
        };
        for c in found {
            if c as usize >= names.len() {
                return Err(bad(format!("class index {c} is out of range (the data has {} classes)", names.len())));
            }
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    if out.len() < 2 {
        return Err(bad("choose at least two classes".into()));
    }
    Ok(out)
}

impl Dataset {
    /// The images of the classes `spec` names (see [`parse_classes`]), relabelled 0.. in
    /// that order.
    pub fn select_classes(&self, spec: &str) -> Result<Dataset> {
        self.require_labels()?;
        let keep = parse_classes(spec, &self.class_names)?;
        Ok(self.filter_classes(&keep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> Vec<String> {
        (0..10).map(|d| d.to_string()).collect()
    }

    #[test]
    fn ranges_lists_and_names() {
        assert_eq!(parse_classes("0-7", &digits()).unwrap(), (0..8).collect::<Vec<u32>>());
        assert_eq!(parse_classes("9, 8", &digits()).unwrap(), vec![9, 8]);
        let pets: Vec<String> = vec!["cat".into(), "dog".into(), "eel".into()];
        assert_eq!(parse_classes("eel,cat,eel", &pets).unwrap(), vec![2, 0]);
    }

    #[test]
    fn bad_lists_name_the_problem_and_the_classes() {
        for (spec, needle) in [("0-12", "out of range"), ("7-3", "range"), ("fish,0", "`fish`"), ("3", "at least two")]
        {
            let e = parse_classes(spec, &digits()).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("0,1,2"), "{spec}: {e}");
        }
    }
}
