//! `cargo xtask cycles`: the module dependency cycles of each crate.
//!
//! A module depends on another when it names an item there
//! (`use crate::a::b`, `super::x`, `crate::a::f()` in code). Only edges
//! between modules on different branches count: a module and its own
//! ancestors or descendants are one unit (a parent declares its children
//! and often re-exports them). The strongly connected components of what
//! is left are the cycles; a crate without any is layered, every module
//! reaching only modules that do not reach back.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

use crate::cache;

/// The crates checked, by their source directory.
const CRATES: &[&str] = &[
    "cowprof/src",
    "cowprof/model/src",
    "cowprof-common/src",
    "cowprof-ebpf/src",
    "xtask/src",
];

/// A module path inside a crate: `["profile", "feed"]`; the root is empty.
type Module = Vec<String>;

pub fn run() -> Result<()> {
    let mut found = 0;
    for dir in CRATES {
        let root = cache::workspace().join(dir);
        let cycles = crate_cycles(&root)?;
        if cycles.is_empty() {
            println!("{dir}: no module cycle");
        }
        for cycle in &cycles {
            println!("{dir}: cycle: {}", cycle.join(" <-> "));
        }
        found += cycles.len();
    }
    if found > 0 {
        bail!("{found} module cycles");
    }
    Ok(())
}

/// The cycles of the crate whose sources are under `root`, each as its
/// modules' paths.
fn crate_cycles(root: &Path) -> Result<Vec<Vec<String>>> {
    let mut sources: BTreeMap<Module, String> = BTreeMap::new();
    for file in rust_files(root)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        sources.insert(module_of(root, &file), text);
    }
    let modules: BTreeSet<Module> = sources.keys().cloned().collect();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, text) in &sources {
        for path in references(module, text) {
            let target = deepest(&modules, &path);
            if !related(module, &target) {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    Ok(components(&modules, &edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.iter().map(display).collect())
        .collect())
}

fn display(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(out)
}

/// The module a source file is: `a/b.rs` and `a/b/mod.rs` are `a::b`;
/// `lib.rs` and `main.rs` the root.
fn module_of(root: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(root).unwrap_or(file);
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            parts.push(stem.to_owned());
        }
    }
    parts
}

/// Whether `a` and `b` are on one branch (one is the other's ancestor).
fn related(a: &Module, b: &Module) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// The deepest module of `modules` that `path` names or names an item of.
fn deepest(modules: &BTreeSet<Module>, path: &[String]) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| modules.contains(m))
        .unwrap_or_default()
}

/// Every crate-relative path `text` (the source of `module`) names, from
/// `use` trees and from paths in code, with `self::`, `super::` and
/// `crate::` resolved.
fn references(module: &Module, text: &str) -> Vec<Vec<String>> {
    let code = strip_comments(text);
    let mut out = Vec::new();
    for statement in use_statements(&code) {
        for path in expand(&statement) {
            if let Some(resolved) = resolve(module, &path) {
                out.push(resolved);
            }
        }
    }
    // Paths written in code: `crate::a::b`, `super::x`.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let begin = from + at;
            from = begin + start.len();
            let boundary = begin == 0 || {
                let c = bytes[begin - 1];
                !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
            };
            if !boundary {
                continue;
            }
            let end = code[begin..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |n| begin + n);
            let path: Vec<String> = code[begin..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(resolved) = resolve(module, &path) {
                out.push(resolved);
            }
        }
    }
    out
}

/// `text` without `//` and `/* */` comments (strings are left alone: a
/// path in a string is rare, and at worst adds an edge).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |n| &after[n..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |n| &after[n + 2..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The trees of the `use` statements of `code`, each as written after
/// `use` and before its `;`.
fn use_statements(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("use ") {
        let before = code[..i].chars().next_back().unwrap_or('\n');
        if before.is_ascii_alphanumeric() || before == '_' {
            continue;
        }
        if let Some(end) = code[i..].find(';') {
            out.push(code[i + 4..i + end].split_whitespace().collect::<String>());
        }
    }
    out
}

/// The paths of one use tree: `a::{b, c::{d, e}}` is `a::b`, `a::c::d`
/// and `a::c::e`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        return vec![path
            .split("::")
            .filter(|s| !s.is_empty() && *s != "*")
            .map(str::to_owned)
            .collect()];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let close = tree.rfind('}').filter(|c| *c > open).unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.extend(expand(&inner[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.extend(expand(&inner[start..]));
    out.into_iter()
        .map(|mut p| {
            if p.first().is_some_and(|s| s == "self") {
                p.remove(0);
            }
            let mut full = prefix.clone();
            full.extend(p);
            full
        })
        .collect()
}

/// `path` as a crate-relative path, when it starts at `crate`, `self` or
/// `super` (other paths name other crates).
fn resolve(module: &Module, path: &[String]) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    match first.as_str() {
        "crate" => Some(rest.to_vec()),
        "self" => Some(module.iter().cloned().chain(rest.iter().cloned()).collect()),
        "super" => {
            let mut base = module.clone();
            base.pop();
            let mut rest = rest;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            Some(base)
        }
        _ => None,
    }
}

/// The strongly connected components of the graph (Tarjan's algorithm).
fn components(
    modules: &BTreeSet<Module>,
    edges: &BTreeMap<Module, BTreeSet<Module>>,
) -> Vec<Vec<Module>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a Module) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            let edges = self.edges;
            for w in edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                component.sort();
                self.out.push(component);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for module in modules {
        if !walk.index.contains_key(module) {
            walk.visit(module);
        }
    }
    walk.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str) -> Module {
        path.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn use_trees_expand_and_resolve() {
        let module = m("gate::measure");
        let refs = references(
            &module,
            "use super::{baseline::Contributor, verdict::{self, Verdict}};\n\
             // use crate::never;\n\
             use crate::profile::read::Profile as P;\n\
             fn f() { crate::output::create(); }",
        );
        assert!(refs.contains(&m("gate::baseline::Contributor")));
        assert!(refs.contains(&m("gate::verdict")));
        assert!(refs.contains(&m("gate::verdict::Verdict")));
        assert!(refs.contains(&m("profile::read::Profile")));
        assert!(refs.contains(&m("output::create")));
        assert!(!refs.contains(&m("never")));
    }

    #[test]
    fn siblings_that_name_each_other_are_a_cycle_and_parents_are_not() {
        let modules: BTreeSet<Module> = ["", "a", "a::x", "a::y", "b"]
            .iter()
            .map(|p| m(p))
            .collect();
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        edges.entry(m("a::x")).or_default().insert(m("a::y"));
        edges.entry(m("a::y")).or_default().insert(m("a::x"));
        edges.entry(m("b")).or_default().insert(m("a::x"));
        let cycles: Vec<_> = components(&modules, &edges)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        assert_eq!(cycles, [vec![m("a::x"), m("a::y")]]);
        assert!(related(&m("a"), &m("a::x")));
        assert!(!related(&m("a::x"), &m("a::y")));
    }
}
