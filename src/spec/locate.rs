//! Maps a path inside a YAML document (`layers[0].files[1].source`) to its
//! line and column, so checks that run after deserialisation can point at
//! the exact place too.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

enum Frame {
    Map { key: Option<String>, seen: std::collections::HashSet<String> },
    Seq { index: usize },
}

#[derive(Default)]
struct Index {
    stack: Vec<Frame>,
    paths: HashMap<String, (usize, usize)>,
    /// The first key that appears twice in one mapping: (key, line, column).
    duplicate: Option<(String, usize, usize)>,
}

impl Index {
    fn path(&self) -> String {
        let mut s = String::new();
        for f in &self.stack {
            match f {
                Frame::Map { key: Some(k), .. } => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Frame::Map { key: None, .. } => {}
                Frame::Seq { index } => s.push_str(&format!("[{index}]")),
            }
        }
        s
    }

    fn record(&mut self, mark: Marker) {
        let p = self.path();
        // yaml-rust2 lines are 1-based, columns 0-based.
        self.paths.entry(p).or_insert((mark.line(), mark.col() + 1));
    }

    fn value_start(&mut self, mark: Marker) {
        if let Some(Frame::Seq { .. }) = self.stack.last() {
            self.record(mark);
        }
    }

    fn value_end(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Index {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(v, ..) => {
                if let Some(Frame::Map { key, seen }) = self.stack.last_mut() {
                    if key.is_none() {
                        if !seen.insert(v.clone()) && self.duplicate.is_none() {
                            self.duplicate = Some((v.clone(), mark.line(), mark.col() + 1));
                        }
                        *key = Some(v);
                        self.record(mark);
                        return;
                    }
                }
                self.value_start(mark);
                self.value_end();
            }
            Event::Alias(_) => {
                self.value_start(mark);
                self.value_end();
            }
            Event::MappingStart(..) => {
                self.value_start(mark);
                self.stack.push(Frame::Map { key: None, seen: Default::default() });
            }
            Event::SequenceStart(..) => {
                self.value_start(mark);
                self.stack.push(Frame::Seq { index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.value_end();
            }
            _ => {}
        }
    }
}

/// Line (1-based) and column (1-based) of every node path in `text`.
/// Returns an empty map when the text does not parse (the deserialiser
/// reports that error with its own location).
pub fn index(text: &str) -> HashMap<String, (usize, usize)> {
    let mut idx = Index::default();
    let mut parser = Parser::new_from_str(text);
    if parser.load(&mut idx, false).is_err() {
        return HashMap::new();
    }
    idx.paths
}

/// The first key written twice in one mapping, with its second position.
pub fn first_duplicate(text: &str) -> Option<(String, usize, usize)> {
    let mut idx = Index::default();
    let mut parser = Parser::new_from_str(text);
    let _ = parser.load(&mut idx, false);
    idx.duplicate
}

/// The location of `path`, or of its closest recorded ancestor.
pub fn find(index: &HashMap<String, (usize, usize)>, path: &str) -> Option<(usize, usize)> {
    let mut p = path.to_string();
    loop {
        if let Some(l) = index.get(&p) {
            return Some(*l);
        }
        let cut = p.rfind(['.', '['])?;
        p.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_items() {
        let text = "version: 1\nlayers:\n  - files:\n      - path: /a\n        source: x\n  - name: two\n";
        let idx = index(text);
        assert_eq!(idx.get("version"), Some(&(1, 1)));
        assert_eq!(idx.get("layers[0].files[0].source"), Some(&(5, 9)));
        assert_eq!(idx.get("layers[1].name"), Some(&(6, 5)));
        assert_eq!(find(&idx, "layers[1].name.nope"), Some((6, 5)));
    }

    #[test]
    fn finds_the_second_of_two_equal_keys() {
        let text = "version: 1\nname: a\nlayers:\n  - dirs: [{path: /a, path: /b}]\nname: b\n";
        assert_eq!(first_duplicate(text), Some(("path".to_string(), 4, 23)));
        assert_eq!(first_duplicate("a: 1\nb: {a: 2}\n"), None);
    }
}
