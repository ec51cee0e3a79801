//! Checks on the source tree itself, run as ordinary tests: no two modules of `src/` depend
//! on each other, directly or through others. A cycle means a shared piece belongs a floor
//! further down; the test names the modules of each cycle.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, reason = "a failing test panics")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of `src/` (as `a::b`, the crate root as ``) and the source of its file.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
            parts.pop();
        }
        if parts.is_empty() && file.ends_with("main.rs") {
            continue;
        }
        modules.insert(parts.join("::"), std::fs::read_to_string(&file).unwrap());
    }
    modules
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The code of a module without its tests, comments and string literals.
fn code(source: &str) -> String {
    let source = source.split("#[cfg(test)]\nmod tests {").next().unwrap_or(source);
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut in_string = false;
        let mut previous = ' ';
        for c in line.chars() {
            if c == '"' && previous != '\\' {
                in_string = !in_string;
            } else if !in_string {
                if c == '/' && previous == '/' {
                    out.pop();
                    break;
                }
                out.push(c);
            }
            previous = c;
        }
        out.push('\n');
    }
    out
}

/// `a::{b::c, d}` written out as `a::b::c a::d`, nested groups too.
fn expand_groups(code: &str) -> String {
    let Some(open) = code.find("::{") else { return code.to_owned() };
    let start = code[..open].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(0, |i| i + 1);
    let prefix = &code[start..open];
    let mut depth = 0;
    let mut close = code.len();
    for (i, c) in code[open + 2..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = open + 2 + i;
                    break;
                }
            }
            _ => {}
        }
    }
    let inner = &code[(open + 3).min(close)..close];
    let mut items = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[from..]);
    let written: Vec<String> = items.iter().map(|item| format!("{prefix}::{}", item.trim())).collect();
    let rest = code.get(close + 1..).unwrap_or("");
    expand_groups(&format!("{}{} {}", &code[..start], written.join(" "), rest))
}

/// The modules `module` names through `crate::`, `super::` or its own submodules.
fn dependencies(module: &str, source: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let here: Vec<&str> = if module.is_empty() { Vec::new() } else { module.split("::").collect() };
    let code = expand_groups(&code(source));
    let mut found = BTreeSet::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        if !starts_word {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len() && (bytes[j].is_alphanumeric() || bytes[j] == '_' || bytes[j] == ':') {
            j += 1;
        }
        let path: String = bytes[i..j].iter().collect();
        i = j.max(i + 1);
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let Some(first) = segments.first() else { continue };
        let mut target: Vec<String> = match *first {
            "crate" => Vec::new(),
            "super" => {
                let mut parent: Vec<String> = here.iter().map(|s| (*s).to_owned()).collect();
                let mut rest = &segments[..];
                while rest.first() == Some(&"super") {
                    parent.pop();
                    rest = &rest[1..];
                }
                let mut t = parent;
                t.extend(rest.iter().map(|s| (*s).to_owned()));
                resolve(&t, known).map(|m| found.insert(m));
                continue;
            }
            "self" => here.iter().map(|s| (*s).to_owned()).collect(),
            child if segments.len() > 1 && known.contains(&join(&here, child)) => {
                here.iter().map(|s| (*s).to_owned()).collect()
            }
            _ => continue,
        };
        let rest = if *first == "crate" || *first == "self" { &segments[1..] } else { &segments[..] };
        target.extend(rest.iter().map(|s| (*s).to_owned()));
        if let Some(m) = resolve(&target, known) {
            found.insert(m);
        }
    }
    found.remove(module);
    // A module's own submodules are below it, not beside it.
    found.retain(|m| !m.starts_with(&format!("{module}::")) || module.is_empty());
    found
}

fn join(here: &[&str], child: &str) -> String {
    let mut parts: Vec<&str> = here.to_vec();
    parts.push(child);
    parts.join("::")
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &[String], known: &BTreeSet<String>) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|candidate| known.contains(candidate))
}

/// Every path from a module back to itself, found depth first, each written once from its
/// least module: `a -> b`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let mut cycles = BTreeSet::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    let min = cycle.iter().enumerate().min_by_key(|(_, m)| (*m).clone()).map(|(i, _)| i).unwrap();
                    cycle.rotate_left(min);
                    cycles.insert(cycle.join(" -> "));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    cycles
}

#[test]
fn no_two_modules_depend_on_each_other() {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().filter(|m| !m.is_empty()).cloned().collect();
    let graph = modules
        .iter()
        .filter(|(m, _)| !m.is_empty())
        .map(|(m, source)| (m.clone(), dependencies(m, source, &known)))
        .collect();
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "modules that depend on each other:\n{}",
        cycles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_search_finds_every_cycle_and_nothing_else() {
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph.entry((*from).to_owned()).or_default().insert((*to).to_owned());
            graph.entry((*to).to_owned()).or_default();
        }
        graph
    };
    let found = cycles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d")]));
    assert_eq!(found, ["a -> b -> c".to_owned(), "d -> e".to_owned()].into());
    assert!(cycles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
}

#[test]
fn dependencies_are_the_modules_the_code_names() {
    let known: BTreeSet<String> = ["a", "b", "a::c"].into_iter().map(str::to_owned).collect();
    assert_eq!(dependencies("a", "use crate::b::Thing;\nfn f() { c::g() }", &known), ["b".to_owned()].into());
    assert_eq!(
        dependencies("b", "fn f() { crate::a::c::h(); super::a::x() }", &known),
        ["a::c".to_owned(), "a".to_owned()].into()
    );
    assert_eq!(
        dependencies("a::c", "use super::Y; // crate::b::not_code\nconst S: &str = \"crate::b\";", &known),
        ["a".to_owned()].into()
    );
    assert_eq!(dependencies("a::c", "use crate::{b::{X, Y}, a::Z};", &known), ["a".to_owned(), "b".to_owned()].into());
}
