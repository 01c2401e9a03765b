//! The crates whose internals percore relies on stay pinned exactly, and
//! the lock file holds the pinned versions: a loosened pin, or a lock file
//! moved by hand, fails here before a layout assumption fails elsewhere.
//! Which crates and why: the comment above them in the root `Cargo.toml`.

use std::path::Path;

/// Crates pinned for their internals.
const PINNED: [&str; 2] = ["rkyv", "hashbrown"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root")
}

/// The version requirement of workspace dependency `name`.
fn requirement(manifest: &toml::Table, name: &str) -> String {
    let dep = &manifest["workspace"]["dependencies"][name];
    match dep {
        toml::Value::String(v) => v.clone(),
        t => t["version"].as_str().expect("a version").to_string(),
    }
}

#[test]
fn crates_relied_on_for_their_internals_are_pinned_exactly() {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("root Cargo.toml");
    let manifest: toml::Table = text.parse().expect("valid TOML");
    let lock_text = std::fs::read_to_string(root().join("Cargo.lock")).expect("Cargo.lock");
    let lock: toml::Table = lock_text.parse().expect("valid lock file");
    let packages = lock["package"].as_array().expect("packages");
    for name in PINNED {
        let req = requirement(&manifest, name);
        let Some(version) = req.strip_prefix('=') else {
            panic!("{name} = {req:?} in Cargo.toml: must be pinned exactly (=x.y.z)");
        };
        assert_eq!(version.split('.').count(), 3, "{name}: pin a full version, not {req:?}");
        let locked: Vec<&str> = packages
            .iter()
            .filter(|p| p["name"].as_str() == Some(name))
            .filter_map(|p| p["version"].as_str())
            .collect();
        assert_eq!(locked, [version], "{name}: Cargo.lock holds {locked:?}, the pin says {version}");
    }
}
