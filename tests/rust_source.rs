//! Just enough of a Rust reader for the tidy tests: tokens (comments, strings and char
//! literals skipped), each file's module imports, the module graph of a crate and its
//! cycles, and the length of every function. Hand written, so the tidy tests need no parser
//! dependency; `tidy.rs` runs it on small synthetic crates, so it is known to find what it
//! should.
//!
//! A module is its file: inline `mod x { .. }` blocks belong to the file that holds them,
//! and test code (`#[cfg(test)]` and `#[test]` items) is left out, since it is compiled only
//! into the test harness. A module's imports are the paths it names that lead into another
//! module of its crate:
//! `use crate::a::B`, `super::b::f()`, `use a::B` from a's parent, and so on. A name that a
//! module only brings in with `use` (`pub use b::B` in `a`, then `crate::a::B`) is followed
//! to the module it comes from. The `mod x;` declaration that makes a file part of the crate
//! is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module by its path from the crate root (`[]` is the root, `["train", "plan"]`).
pub type ModPath = Vec<String>;

/// One crate target's modules and who imports from whom.
pub struct ModuleGraph {
    /// Module -> the file that holds it.
    pub files: BTreeMap<ModPath, PathBuf>,
    /// Module -> the modules it imports from (never itself).
    pub edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

/// A lexical token, as far as imports and function bodies need.
#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// An identifier or keyword (or a number's digits).
    Ident(String),
    /// `::`
    PathSep,
    /// Any other single character.
    Punct(char),
}

/// A function with a body: its name, the line of `fn` and its length in lines (signature
/// to closing brace).
#[derive(Debug, PartialEq)]
pub struct FnSpan {
    /// The function's name.
    pub name: String,
    /// 1-based line of the `fn` keyword.
    pub line: usize,
    /// Lines from `fn` to the closing brace, both counted.
    pub lines: usize,
}

/// Every function with a body in `src`, nested ones included, except `#[test]` functions
/// and whatever sits inside a `#[cfg(test)]` item.
pub fn function_spans(src: &str) -> Vec<FnSpan> {
    let tokens = tokenize_with_lines(src);
    let mut spans = Vec::new();
    let mut test_item_pending = false;
    let mut i = 0;
    while i < tokens.len() {
        if let Some(after) = test_attribute_end(&tokens, i) {
            test_item_pending = true;
            i = after;
            continue;
        }
        let word = match &tokens[i].0 {
            Token::Ident(w) => w.as_str(),
            Token::Punct(';') => {
                test_item_pending = false;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let item = matches!(
            word,
            "fn" | "mod" | "impl" | "struct" | "enum" | "use" | "const" | "static" | "trait"
        );
        if item && test_item_pending {
            test_item_pending = false;
            i = item_end(&tokens, i);
            continue;
        }
        if word == "fn" {
            if let (Some(Token::Ident(name)), Some(body)) =
                (tokens.get(i + 1).map(|t| &t.0), body_start(&tokens, i))
            {
                let close = matching_brace(&tokens, body);
                spans.push(FnSpan {
                    name: name.clone(),
                    line: tokens[i].1,
                    lines: tokens[close.min(tokens.len() - 1)].1 - tokens[i].1 + 1,
                });
            }
        }
        i += 1;
    }
    spans
}

/// The index after `#[test]`, `#[cfg(test)]` or `#[cfg(all(test, …))]` starting at `i`.
fn test_attribute_end(tokens: &[(Token, usize)], i: usize) -> Option<usize> {
    if tokens[i].0 != Token::Punct('#')
        || tokens.get(i + 1).map(|t| &t.0) != Some(&Token::Punct('['))
    {
        return None;
    }
    let close = tokens[i..].iter().position(|t| t.0 == Token::Punct(']'))? + i;
    let words: Vec<&str> = tokens[i + 2..close]
        .iter()
        .filter_map(|t| match &t.0 {
            Token::Ident(w) => Some(w.as_str()),
            _ => None,
        })
        .collect();
    let is_test = words == ["test"]
        || (words.first() == Some(&"cfg") && words.contains(&"test") && !words.contains(&"not"));
    is_test.then_some(close + 1)
}

/// The index of the `{` opening the body of the item at `i`, if it has one before a `;`.
fn body_start(tokens: &[(Token, usize)], i: usize) -> Option<usize> {
    let mut parens = 0i32;
    for (j, (t, _)) in tokens.iter().enumerate().skip(i + 1) {
        match t {
            Token::Punct('(') | Token::Punct('[') => parens += 1,
            Token::Punct(')') | Token::Punct(']') => parens -= 1,
            Token::Punct('{') if parens == 0 => return Some(j),
            Token::Punct(';') if parens == 0 => return None,
            _ => {}
        }
    }
    None
}

/// The index of the `}` closing the `{` at `open`.
fn matching_brace(tokens: &[(Token, usize)], open: usize) -> usize {
    let mut depth = 0;
    for (j, (t, _)) in tokens.iter().enumerate().skip(open) {
        match t {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// The index after the item starting at `i` (its closing brace or `;`).
fn item_end(tokens: &[(Token, usize)], i: usize) -> usize {
    match body_start(tokens, i) {
        Some(open) => matching_brace(tokens, open) + 1,
        None => tokens[i..]
            .iter()
            .position(|t| t.0 == Token::Punct(';'))
            .map_or(tokens.len(), |p| i + p + 1),
    }
}

/// Rust source as identifiers, `::` and single punctuation, each with its 1-based line;
/// comments, string, byte string, raw string and char literals removed (lifetimes keep
/// their name).
fn tokenize_with_lines(src: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = src.chars().collect();
    // Line of each char index, so skipped literals and comments keep the count right.
    let mut line_at = Vec::with_capacity(chars.len() + 1);
    let mut line = 1;
    for &c in &chars {
        line_at.push(line);
        if c == '\n' {
            line += 1;
        }
    }
    line_at.push(line);
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i = skip_block_comment(&chars, i);
        } else if c == '"' {
            i = skip_string(&chars, i + 1);
        } else if let Some(end) = raw_or_byte_string_end(&chars, i) {
            i = end;
        } else if c == '\'' {
            i = skip_char_or_lifetime(&chars, i);
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((
                Token::Ident(chars[start..i].iter().collect()),
                line_at[start],
            ));
        } else if c == ':' && next == Some(':') {
            tokens.push((Token::PathSep, line_at[i]));
            i += 2;
        } else {
            tokens.push((Token::Punct(c), line_at[i]));
            i += 1;
        }
    }
    tokens
}

fn skip_block_comment(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Index after the closing quote of a string whose body starts at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '"' {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// `b"…"`, `b'…'`, `r"…"`, `r#"…"#`, `br#"…"#` starting at `i`: the index after it.
fn raw_or_byte_string_end(chars: &[char], i: usize) -> Option<usize> {
    let starts_word = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    if !starts_word {
        return None;
    }
    let mut j = i;
    if chars[j] == 'b' {
        j += 1;
        match chars.get(j) {
            Some('"') => return Some(skip_string(chars, j + 1)),
            Some('\'') => return Some(skip_char_or_lifetime(chars, j)),
            _ => {}
        }
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    if chars.get(j + hashes) != Some(&'"') {
        return None;
    }
    let mut k = j + hashes + 1;
    while k < chars.len() {
        if chars[k] == '"' && chars[k + 1..].iter().take_while(|&&c| c == '#').count() >= hashes {
            return Some(k + 1 + hashes);
        }
        k += 1;
    }
    Some(k)
}

/// A char literal (`'a'`, `'\n'`, `'\u{1F600}'`) is skipped; a lifetime's quote only.
fn skip_char_or_lifetime(chars: &[char], i: usize) -> usize {
    match (chars.get(i + 1), chars.get(i + 2)) {
        (Some('\\'), _) => {
            let mut j = i + 2;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            j + 1
        }
        (Some(_), Some('\'')) => i + 3,
        _ => i + 1,
    }
}

/// What one file says: its `mod x;` children, its `use` bindings and every path it names,
/// leaving out `#[cfg(test)]` and `#[test]` items.
#[derive(Default)]
struct FileFacts {
    /// `mod x;` declarations at file level: children in their own files.
    children: Vec<String>,
    /// Paths named, each with the inline modules it was named in (for `self` and `super`).
    paths: Vec<(Vec<String>, Vec<String>)>,
    /// Name brought into scope by a file-level `use` -> the path it names.
    bindings: BTreeMap<String, Vec<String>>,
}

fn ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i) {
        Some(Token::Ident(s)) => Some(s),
        _ => None,
    }
}

fn file_facts(src: &str) -> FileFacts {
    let lexemes = tokenize_with_lines(src);
    let tokens: Vec<Token> = lexemes.iter().map(|(t, _)| t.clone()).collect();
    let mut facts = FileFacts::default();
    // The inline modules open here, each with the brace depth it opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let here = |inline: &[(String, usize)]| -> Vec<String> {
        inline.iter().map(|(name, _)| name.clone()).collect()
    };
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        if let Some(after) = test_attribute_end(&lexemes, i) {
            // Test code is compiled only into the test harness: not part of the graph.
            i = item_end(&lexemes, after);
            continue;
        }
        match &tokens[i] {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(name), Some(next)) = (ident(&tokens, i + 1), tokens.get(i + 2)) {
                    if *next == Token::Punct(';') && inline.is_empty() {
                        facts.children.push(name.to_string());
                    } else if *next == Token::Punct('{') {
                        inline.push((name.to_string(), depth));
                    }
                    i += 2;
                    continue;
                }
            }
            Token::Ident(word) if word == "use" && !follows_dollar(&tokens, i) => {
                let (trees, end) = use_tree(&tokens, i + 1, Vec::new());
                for (binding, path) in trees {
                    if inline.is_empty() && binding != "*" && binding != "_" {
                        facts.bindings.insert(binding, path.clone());
                    }
                    facts.paths.push((here(&inline), path));
                }
                i = end;
                continue;
            }
            Token::Ident(first) if starts_path(&tokens, i) => {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while tokens.get(j) == Some(&Token::PathSep) {
                    match ident(&tokens, j + 1) {
                        Some(seg) => path.push(seg.to_string()),
                        None => break,
                    }
                    j += 2;
                }
                facts.paths.push((here(&inline), path));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    facts
}

fn follows_dollar(tokens: &[Token], i: usize) -> bool {
    i > 0 && tokens[i - 1] == Token::Punct('$')
}

/// An identifier followed by `::` that is not itself the tail of a path, `$crate`, or
/// `pub(in path)`.
fn starts_path(tokens: &[Token], i: usize) -> bool {
    let before = i.checked_sub(1).map(|j| &tokens[j]);
    let is_tail = matches!(before, Some(Token::PathSep | Token::Punct('$')));
    let is_visibility = matches!(before, Some(Token::Ident(w)) if w == "in");
    tokens.get(i + 1) == Some(&Token::PathSep) && !is_tail && !is_visibility
}

/// Parses the use tree starting at `i` under `prefix`: each (bound name, full path), and the
/// index after the tree.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    mut prefix: Vec<String>,
) -> (Vec<(String, Vec<String>)>, usize) {
    let mut out = Vec::new();
    if tokens.get(i) == Some(&Token::PathSep) {
        i += 1;
    }
    loop {
        match tokens.get(i) {
            Some(Token::Ident(seg)) => {
                prefix.push(seg.clone());
                i += 1;
                if tokens.get(i) == Some(&Token::PathSep) {
                    i += 1;
                    continue;
                }
                let mut name = prefix.last().cloned().unwrap_or_default();
                if ident(tokens, i) == Some("as") {
                    name = ident(tokens, i + 1).unwrap_or("_").to_string();
                    i += 2;
                }
                if name == "self" {
                    prefix.pop();
                    name = prefix.last().cloned().unwrap_or_default();
                }
                out.push((name, prefix));
                return (out, skip_semicolon(tokens, i));
            }
            Some(Token::Punct('*')) => {
                out.push(("*".to_string(), prefix));
                return (out, skip_semicolon(tokens, i + 1));
            }
            Some(Token::Punct('{')) => {
                i += 1;
                while tokens.get(i).is_some() && tokens.get(i) != Some(&Token::Punct('}')) {
                    let (inner, end) = use_tree(tokens, i, prefix.clone());
                    out.extend(inner);
                    i = end;
                    if tokens.get(i) == Some(&Token::Punct(',')) {
                        i += 1;
                    }
                }
                return (out, skip_semicolon(tokens, i + 1));
            }
            _ => return (out, i),
        }
    }
}

/// Steps over a `;` ending a use item (a tree inside braces ends at `,` or `}` instead).
fn skip_semicolon(tokens: &[Token], i: usize) -> usize {
    if tokens.get(i) == Some(&Token::Punct(';')) {
        i + 1
    } else {
        i
    }
}

impl ModuleGraph {
    /// The graph of the crate target whose root file is `root` (`src/lib.rs`, `src/main.rs`).
    pub fn read(root: &Path) -> ModuleGraph {
        let mut facts: BTreeMap<ModPath, FileFacts> = BTreeMap::new();
        let mut files = BTreeMap::new();
        let dir = root.parent().unwrap().to_path_buf();
        let mut todo = vec![(Vec::new(), root.to_path_buf(), dir)];
        while let Some((module, file, child_dir)) = todo.pop() {
            let src = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
            let f = file_facts(&src);
            for child in &f.children {
                let mut path = module.clone();
                path.push(child.clone());
                let flat = child_dir.join(format!("{child}.rs"));
                let child_file = if flat.exists() {
                    flat
                } else {
                    child_dir.join(child).join("mod.rs")
                };
                todo.push((path, child_file, child_dir.join(child)));
            }
            files.insert(module.clone(), file);
            facts.insert(module, f);
        }
        let mut edges = BTreeMap::new();
        for (module, f) in &facts {
            let targets: BTreeSet<ModPath> = f
                .paths
                .iter()
                .filter_map(|(inline, path)| {
                    let named_in: ModPath = module.iter().chain(inline).cloned().collect();
                    let relative_ok = inline.is_empty();
                    Some(resolve(
                        &facts,
                        absolute(&named_in, path, f, relative_ok)?,
                        0,
                    ))
                })
                .filter(|target| target != module)
                .collect();
            edges.insert(module.clone(), targets);
        }
        ModuleGraph { files, edges }
    }

    /// One cycle per strongly connected group of modules: a shortest closed walk
    /// `a -> b -> … -> a` through its first module, and every module of the group.
    pub fn cycles(&self) -> Vec<(Vec<ModPath>, BTreeSet<ModPath>)> {
        let mut cycles = Vec::new();
        let mut done: BTreeSet<ModPath> = BTreeSet::new();
        for start in self.edges.keys() {
            if done.contains(start) {
                continue;
            }
            if let Some(cycle) = self.shortest_cycle_through(start) {
                let group: BTreeSet<ModPath> =
                    self.component_of(start).into_iter().cloned().collect();
                done.extend(group.iter().cloned());
                cycles.push((cycle, group));
            }
        }
        cycles
    }

    /// The modules that reach `start` and that `start` reaches.
    fn component_of(&self, start: &ModPath) -> BTreeSet<&ModPath> {
        let reach = |from: &ModPath| -> BTreeSet<&ModPath> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from];
            while let Some(m) = todo.pop() {
                for next in self.edges.get(m).into_iter().flatten() {
                    if seen.insert(next) {
                        todo.push(next);
                    }
                }
            }
            seen
        };
        let forward = reach(start);
        forward
            .iter()
            .copied()
            .filter(|m| reach(m).contains(start))
            .collect()
    }

    /// Breadth-first from `start` back to itself.
    fn shortest_cycle_through(&self, start: &ModPath) -> Option<Vec<ModPath>> {
        let mut parent: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(m) = queue.pop_front() {
            for next in self.edges.get(m).into_iter().flatten() {
                if next == start {
                    let mut walk = Vec::new();
                    let mut at = m;
                    while at != start {
                        walk.push(at.clone());
                        at = parent[at];
                    }
                    walk.push(start.clone());
                    walk.reverse();
                    walk.push(start.clone());
                    return Some(walk);
                }
                if !parent.contains_key(next) && next != start {
                    parent.insert(next, m);
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

/// `path`, named in module `named_in` (a file's module or an inline module in it), from the
/// crate root; or `None` when it leads outside the crate (another crate, std, a local
/// name). A path starting with a child module's name counts where `children_in_scope`.
fn absolute(
    named_in: &ModPath,
    path: &[String],
    f: &FileFacts,
    children_in_scope: bool,
) -> Option<ModPath> {
    let (first, rest) = path.split_first()?;
    match first.as_str() {
        "crate" => Some(rest.to_vec()),
        "self" => Some(named_in.iter().chain(rest).cloned().collect()),
        "super" => {
            let mut base = named_in.clone();
            let mut rest = rest;
            base.pop()?;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
            Some(base.into_iter().chain(rest.iter().cloned()).collect())
        }
        _ if children_in_scope && f.children.contains(first) => {
            Some(named_in.iter().chain(path).cloned().collect())
        }
        _ => None,
    }
}

/// The module an absolute path leads into: its longest module prefix, and when the next
/// segment is a name that module imports with `use`, where that name comes from.
fn resolve(facts: &BTreeMap<ModPath, FileFacts>, path: ModPath, hops: usize) -> ModPath {
    let mut module: ModPath = Vec::new();
    let mut rest = path.as_slice();
    while let Some((seg, tail)) = rest.split_first() {
        let mut longer = module.clone();
        longer.push(seg.clone());
        if !facts.contains_key(&longer) {
            break;
        }
        module = longer;
        rest = tail;
    }
    let Some(name) = rest.first() else {
        return module;
    };
    let Some(imported) = facts[&module].bindings.get(name) else {
        return module;
    };
    let Some(source) = absolute(&module, imported, &facts[&module], true) else {
        return module;
    };
    if hops > 16 {
        return module;
    }
    let followed: ModPath = source
        .into_iter()
        .chain(rest[1..].iter().cloned())
        .collect();
    resolve(facts, followed, hops + 1)
}
