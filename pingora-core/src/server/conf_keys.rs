//! The top-level keys of a config file that are not the server's: a
//! program's own settings (read with its own serde struct from the same
//! file), or a misspelt server key. [`UnknownKey`] says which, as far as a
//! spelling distance can tell.

use std::fmt;

/// A top-level key of a config file that the server does not know.
///
/// The server ignores such keys, so that a program can keep its own
/// settings in the same file; a key close to one of the server's is
/// probably a typo and is reported with the key it resembles (`-t` fails
/// on it, start-up logs a warning).
///
/// # Examples
///
/// ```
/// use pingora_core::server::ServerConf;
///
/// let yaml = "threads: 2\nthreadz: 3\nmy_app_upstream: 10.0.0.1:80\n";
/// let unknown = ServerConf::unknown_keys(yaml);
/// assert_eq!(unknown.len(), 2);
/// assert_eq!(unknown[0].key, "threadz");
/// assert_eq!(unknown[0].did_you_mean.as_deref(), Some("threads"));
/// assert_eq!(unknown[1].did_you_mean, None); // the program's own key
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnknownKey {
    /// The key as written.
    pub key: String,
    /// The server key it is close to, when it looks misspelt.
    pub did_you_mean: Option<String>,
}

impl UnknownKey {
    /// Whether the key looks like a misspelt server key.
    pub const fn is_likely_typo(&self) -> bool {
        self.did_you_mean.is_some()
    }
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.did_you_mean {
            Some(known) => write!(
                f,
                "unknown key `{}`, ignored: did you mean `{known}`?",
                self.key
            ),
            None => write!(
                f,
                "key `{}` is not a server key, ignored by the server (fine if the program reads it)",
                self.key
            ),
        }
    }
}

/// The top-level keys of `doc` that are not in `known`, in file order.
pub(super) fn unknown(doc: &yaml_serde::Value, known: &[String]) -> Vec<UnknownKey> {
    let Some(map) = doc.as_mapping() else {
        return Vec::new();
    };
    map.keys()
        .map(|k| match k.as_str() {
            Some(s) => s.to_string(),
            None => format!("{k:?}"),
        })
        .filter(|k| !known.iter().any(|known| known == k))
        .map(|key| UnknownKey {
            did_you_mean: closest(&key, known).map(str::to_string),
            key,
        })
        .collect()
}

/// The known key `key` is probably a misspelling of: the same once case,
/// `-` and `_` are ignored, or within 2 edits for keys of 5 or more
/// characters (1 edit below).
fn closest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    let fold = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let folded = fold(key);
    let limit = if key.chars().count() >= 5 { 2 } else { 1 };
    known
        .iter()
        .map(|k| (k.as_str(), distance(&folded, &fold(k))))
        .filter(|(_, d)| *d <= limit)
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k)
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("threads", "threads"), 0);
        assert_eq!(distance("threadz", "threads"), 1);
        assert_eq!(distance("thread", "threads"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn typos_and_own_keys() {
        let known = ["threads", "pid_file", "daemon", "max_retries"].map(String::from);
        let doc: yaml_serde::Value =
            yaml_serde::from_str("Threads: 1\npid-file: x\nmax_retrys: 2\nupstreams: [a]\n")
                .unwrap();
        let found = unknown(&doc, &known);
        let typos: Vec<_> = found
            .iter()
            .map(|u| (u.key.as_str(), u.did_you_mean.as_deref()))
            .collect();
        assert_eq!(
            typos,
            [
                ("Threads", Some("threads")),
                ("pid-file", Some("pid_file")),
                ("max_retrys", Some("max_retries")),
                ("upstreams", None),
            ]
        );
        assert!(found[0].to_string().contains("did you mean `threads`"));
        assert!(!found[3].is_likely_typo());
    }
}
