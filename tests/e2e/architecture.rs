//! The layering rule of ARCHITECTURE.md, checked: inside each crate the top-level modules
//! import one another without a cycle (no module imports one that imports it).
//!
//! References are read from the source text: `crate::a::…`, grouped `use crate::{a, b::…}`,
//! and names the crate root re-exports (`crate::Foo` where lib.rs has `pub use a::Foo`).
//! Code after a file's first `#[cfg(test)]` is left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules it refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its test module and comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of each item of a `{a::X, b, c::{Y, Z}}` group (text after `{`).
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && !c.is_whitespace() => {
                start = false;
                heads.push(ident(&s[i..]).to_string());
            }
            _ => {}
        }
    }
    heads
}

/// Every first segment after `crate::` in `code`.
fn crate_refs(code: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        // `strata_data::…` is another crate, not `crate::`
        if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => refs.extend(group_heads(group)),
            None => refs.push(ident(rest).to_string()),
        }
    }
    refs
}

/// Names the crate root re-exports → the module they come from (`pub use a::{X, Y}`).
fn root_reexports(root: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in code(root).split(';') {
        let Some(path) = stmt.trim().strip_prefix("pub use ") else { continue };
        let module = ident(path).to_string();
        let rest = &path[module.len()..];
        let names: Vec<String> = match rest.find('{') {
            Some(b) => rest[b + 1..]
                .split([',', '}'])
                .map(|n| n.trim().rsplit("::").next().unwrap_or("").to_string())
                .collect(),
            None => vec![rest.rsplit("::").next().unwrap_or("").trim().to_string()],
        };
        for name in names.into_iter().filter(|n| !n.is_empty()) {
            let name = name.split(" as ").last().unwrap_or(&name).trim().to_string();
            map.insert(name, module.clone());
        }
    }
    map
}

/// The module graph of the crate whose sources are in `src`.
fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let root = ["lib.rs", "main.rs"].iter().map(|f| src.join(f)).find(|p| p.is_file());
    let reexports = root.as_ref().map(|p| root_reexports(&std::fs::read_to_string(p).unwrap())).unwrap_or_default();
    let mut modules: BTreeSet<String> = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
        modules.insert(first.trim_end_matches(".rs").to_string());
    }
    let mut g = Graph::new();
    for f in &files {
        if Some(f) == root.as_ref() {
            continue;
        }
        let rel = f.strip_prefix(src).unwrap();
        let me = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(f).unwrap();
        for r in crate_refs(&code(&text)) {
            let target = if modules.contains(&r) { Some(r) } else { reexports.get(&r).cloned() };
            if let Some(t) = target.filter(|t| *t != me) {
                g.entry(me.clone()).or_default().insert(t);
            }
        }
    }
    g
}

/// A cycle of `g`, if it has one, as the modules along it.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(n: &str, g: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut checked = 0;
    for entry in std::fs::read_dir(crates_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let g = graph(&src);
        if let Some(cycle) = find_cycle(&g) {
            panic!("{}: modules import each other in a cycle: {}", dir.display(), cycle.join(" → "));
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} crates found under {}", crates_dir().display());
}

#[test]
fn the_cycle_check_sees_grouped_uses_and_root_reexports() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path();
    std::fs::create_dir_all(src.join("formats")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a; pub mod b; pub mod formats;\npub use b::{Thing, Other};\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::{formats::{x, y}, Thing};\n").unwrap();
    std::fs::write(src.join("b.rs"), "pub struct Thing; pub struct Other;\n#[cfg(test)]\nuse crate::a::z;\n").unwrap();
    std::fs::write(src.join("formats/mod.rs"), "// crate::b is only a comment\nuse strata_data::crate_like;\n")
        .unwrap();
    let g = graph(src);
    assert_eq!(g["a"], BTreeSet::from(["formats".to_string(), "b".to_string()]));
    assert!(!g.contains_key("b"), "test code and comments are not imports: {g:?}");
    assert_eq!(find_cycle(&g), None);
    // a real edge back from formats closes a cycle a → formats → a
    std::fs::write(src.join("formats/idx.rs"), "use crate::a::helper;\n").unwrap();
    let cycle = find_cycle(&graph(src)).expect("cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert!(cycle.contains(&"formats".to_string()) && cycle.contains(&"a".to_string()), "{cycle:?}");
}
