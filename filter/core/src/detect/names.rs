//! The name gazetteer of the NER decoding: first names and surnames from
//! public lists (`models/pii/ner/names.txt`, written by
//! `models/pii/ner/gazetteer.py`; sources and licences in its docstring and
//! the NER model card). A listed word raises the PERSON probability the model
//! gave it by a likelihood ratio, so the model's context still decides: a
//! listed word the model is sure is no name ("Kind regards") stays one.

/// The embedded list: `name<TAB>flags` lines, lower case, sorted by bytes.
const BUILTIN: &str = include_str!("../../../../models/pii/ner/names.txt");
/// Lower-case English words (Debian's `wamerican`), one a line, sorted by bytes.
const BUILTIN_COMMON_EN: &str = include_str!("../../../../models/pii/ner/common-en.txt");

/// A first name.
pub const FIRST: u8 = 1;
/// A surname.
pub const LAST: u8 = 2;
/// Also a common word of one of the languages ("Rose", "Mark").
pub const COMMON: u8 = 4;

/// Names sorted by bytes, with their flags.
#[derive(Debug, Clone)]
pub struct Gazetteer {
    names: Vec<(&'static str, u8)>,
    /// Common English words, sorted.
    common_en: Vec<&'static str>,
}

impl Gazetteer {
    /// The built-in list (about 73,000 names; parsed once per VM).
    pub fn builtin() -> Gazetteer {
        Gazetteer::parse(BUILTIN).with_common_en(BUILTIN_COMMON_EN)
    }

    /// Sets the common English words (one a line, lower case).
    pub fn with_common_en(mut self, list: &'static str) -> Gazetteer {
        let mut words: Vec<&'static str> = list.lines().filter(|l| !l.is_empty()).collect();
        words.sort_unstable();
        words.dedup();
        self.common_en = words;
        self
    }

    /// Whether `word` (any case) is a common English word and no listed name.
    pub fn is_common_en(&self, word: &str) -> bool {
        if word.len() > 32 || word.len() < 3 || self.lookup(word) != 0 {
            return false;
        }
        let lower = word.to_lowercase();
        self.common_en.binary_search(&lower.as_str()).is_ok()
    }

    /// Whether `word` (any case, 3 to 32 bytes) is in the common English
    /// list, listed name or not (a word feature of the NER model).
    pub fn in_common_en(&self, word: &str) -> bool {
        if word.len() > 32 || word.len() < 3 {
            return false;
        }
        let lower = word.to_lowercase();
        self.common_en.binary_search(&lower.as_str()).is_ok()
    }

    /// Parses `name<TAB>flags` lines (`F`, `L`, `FL`); malformed lines are
    /// skipped. The result is sorted whatever the input order.
    pub fn parse(list: &'static str) -> Gazetteer {
        let mut names: Vec<(&'static str, u8)> = list
            .lines()
            .filter_map(|l| {
                let (name, flags) = l.split_once('\t')?;
                let f = flags
                    .bytes()
                    .map(|c| match c {
                        b'F' => FIRST,
                        b'L' => LAST,
                        b'C' => COMMON,
                        _ => 0,
                    })
                    .fold(0, |a, b| a | b);
                (!name.is_empty() && f & (FIRST | LAST) != 0).then_some((name, f))
            })
            .collect();
        names.sort_unstable_by(|a, b| a.0.cmp(b.0));
        names.dedup_by(|a, b| {
            if a.0 == b.0 {
                b.1 |= a.1;
                true
            } else {
                false
            }
        });
        Gazetteer {
            names,
            common_en: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The flags of `word` (any case; 0: not listed). Words of more than 32
    /// bytes are never names here.
    pub fn lookup(&self, word: &str) -> u8 {
        if word.len() > 32 || word.len() < 2 {
            return 0;
        }
        let lower = word.to_lowercase();
        self.names
            .binary_search_by(|(n, _)| (*n).cmp(lower.as_str()))
            .ok()
            .and_then(|i| self.names.get(i))
            .map_or(0, |&(_, f)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_first_names_and_surnames_in_any_case() {
        let g = Gazetteer::builtin();
        assert!(g.len() > 50_000, "{}", g.len());
        assert_ne!(g.lookup("Sanchez") & LAST, 0);
        assert_ne!(g.lookup("DAN") & FIRST, 0);
        assert_ne!(g.lookup("Jürgen") & FIRST, 0);
        // Words of the corpus's own sentences are not listed.
        for w in ["The", "Hi", "Dear", "van", "de", "will", "Please"] {
            assert_eq!(g.lookup(w), 0, "{w}");
        }
        assert_eq!(g.lookup(""), 0);
        assert_eq!(g.lookup(&"a".repeat(40)), 0);
    }

    #[test]
    fn common_english_words_are_not_names() {
        let g = Gazetteer::builtin();
        assert!(g.is_common_en("Mountains"));
        assert!(g.is_common_en("board"));
        assert!(!g.is_common_en("Sanchez"));
        assert!(!g.is_common_en("Hague"));
        assert!(!g.is_common_en("of"));
    }

    #[test]
    fn parse_merges_and_sorts() {
        let g = Gazetteer::parse("zoe\tF\nalex\tL\nalex\tF\nbad line\n\tF\n");
        assert_eq!(g.len(), 2);
        assert_eq!(g.lookup("Alex"), FIRST | LAST);
        assert_eq!(g.lookup("ZOE"), FIRST);
        assert_eq!(g.lookup("bad"), 0);
    }
}
