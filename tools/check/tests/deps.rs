//! The checker stays a library anyone can depend on: its dependencies are
//! a short, known list, with nothing of percore's server, load generator,
//! CLI, plots or benchmark among them.

/// What the checker may depend on, and why.
const ALLOWED: [&str; 4] = [
    "thiserror",  // its error type
    "serde_json", // the JSON report
    "rand",       // the synthetic histories
    "rand_distr", // their zipfian keys
];

#[test]
fn the_checker_depends_only_on_its_short_list() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let text = std::fs::read_to_string(path).expect("the checker's Cargo.toml");
    let manifest: toml::Table = text.parse().expect("valid TOML");
    let deps = manifest.get("dependencies").and_then(toml::Value::as_table).expect("[dependencies]");
    let extra: Vec<&String> = deps.keys().filter(|d| !ALLOWED.contains(&d.as_str())).collect();
    assert!(extra.is_empty(), "percore-check must not depend on {extra:?}: keep it usable without the rest of percore");
    for section in ["build-dependencies", "target"] {
        assert!(manifest.get(section).is_none(), "no {section} in the checker's Cargo.toml");
    }
}
