//! The book cannot drift from the code: every chapter is compiled as doc
//! tests (see `mod book` in `src/lib.rs`) and listed in `SUMMARY.md`,
//! every configuration sample in it boots, and no dependency line in it
//! would fetch another project's crate.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

use pingora::core::server::ServerConf;
use std::path::{Path, PathBuf};

fn book() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src")
}

/// Every chapter's file name and text, `SUMMARY.md` aside.
fn chapters() -> Vec<(String, String)> {
    let mut chapters: Vec<_> = std::fs::read_dir(book())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .filter(|path| !path.ends_with("SUMMARY.md"))
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    chapters.sort();
    assert!(chapters.len() > 10, "{} chapters", chapters.len());
    chapters
}

/// The fenced blocks of `text` whose info string starts with `lang`.
fn blocks<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("\n```") {
        let after = &rest[start + 4..];
        let Some(info_end) = after.find('\n') else {
            break;
        };
        let info = &after[..info_end];
        let body = &after[info_end + 1..];
        let Some(end) = body.find("\n```") else { break };
        if info.split(',').next() == Some(lang) {
            found.push(&body[..end]);
        }
        rest = &body[end + 4..];
    }
    found
}

#[test]
fn every_chapter_is_compiled_and_listed() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let summary = std::fs::read_to_string(book().join("SUMMARY.md")).unwrap();
    for (name, _) in chapters() {
        let include = format!("include_str!(\"../../docs/src/{name}\")");
        assert!(
            lib.contains(&include),
            "{name} is not compiled: add it to `mod book` in src/lib.rs"
        );
        assert!(
            summary.contains(&format!("({name})")),
            "{name} is not in SUMMARY.md"
        );
    }
}

#[test]
fn no_rust_block_is_skipped() {
    for (name, text) in chapters() {
        for info in text.lines().filter_map(|l| l.strip_prefix("```rust")) {
            assert!(
                !info.contains("ignore") && !info.contains("compile_fail"),
                "{name}: a ```rust{info} block is not compiled"
            );
        }
    }
}

#[test]
fn every_configuration_sample_boots() {
    let mut samples = 0;
    for (name, text) in chapters() {
        for yaml in blocks(&text, "yaml") {
            samples += 1;
            if let Err(e) = ServerConf::from_yaml(yaml) {
                panic!("{name}: a configuration sample does not load: {e}\n{yaml}");
            }
        }
    }
    assert!(samples >= 2, "{samples} samples");
}

#[test]
fn dependency_lines_name_this_project() {
    for (name, text) in chapters() {
        for toml in blocks(&text, "toml") {
            for line in toml
                .lines()
                .filter(|l| l.trim_start().starts_with("pingora"))
            {
                assert!(
                    line.contains("path =") || line.contains("git ="),
                    "{name}: `{line}` would fetch the crates.io `pingora`, another project"
                );
            }
        }
    }
}

#[test]
fn every_block_renders_without_a_plugin() {
    // mdbook highlights these; a `mermaid` chart would need a preprocessor
    // and a script we do not ship, and show as raw source.
    for (name, text) in chapters() {
        for info in text.lines().filter_map(|l| l.strip_prefix("```")) {
            let lang = info.split(',').next().unwrap_or("");
            assert_ne!(
                lang, "mermaid",
                "{name}: a mermaid chart does not render in the book"
            );
        }
    }
}
