//! Maps a path inside a YAML document (`layers[0].files[1].source`) to its
//! line and column, so checks that run after deserialisation can point at
//! the exact place too.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

enum Frame {
    Map { key: Option<String> },
    Seq { index: usize },
}

#[derive(Default)]
struct Index {
    stack: Vec<Frame>,
    paths: HashMap<String, (usize, usize)>,
}

impl Index {
    fn path(&self) -> String {
        let mut s = String::new();
        for f in &self.stack {
            match f {
                Frame::Map { key: Some(k) } => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                }
                Frame::Map { key: None } => {}
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
            Some(Frame::Map { key }) => *key = None,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
}

impl MarkedEventReceiver for Index {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(v, ..) => {
                if let Some(Frame::Map { key }) = self.stack.last_mut() {
                    if key.is_none() {
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
                self.stack.push(Frame::Map { key: None });
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
}
