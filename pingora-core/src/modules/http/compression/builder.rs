//! The builder that registers [`ResponseCompression`]: settings shared by
//! every request's instance.

use super::{Algorithm, ResponseCompression};
use crate::modules::http::{HttpModuleBuilder, Module, ModuleBuilder};
use std::sync::Arc;

/// The smallest `Content-Length` compressed by default, in bytes.
pub const DEFAULT_MIN_SIZE: usize = 256;

/// The media types compressed by default. An entry ending in `/` matches
/// every subtype (`text/`), one starting with `+` matches a structured
/// syntax suffix (`+json` matches `application/problem+json`); the others
/// match exactly. Parameters (`; charset=...`) and case are ignored.
pub const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "text/",
    "+json",
    "+xml",
    "application/json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/wasm",
    "application/x-ndjson",
    "application/graphql-response+json",
    "application/vnd.ms-fontobject",
    "application/x-font-ttf",
    "font/ttf",
    "font/otf",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
];

/// What every request starts with; shared by the builder's instances.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) levels: [u32; 3],
    pub(super) decompress: [bool; 3],
    pub(super) min_size: usize,
    pub(super) content_types: Vec<String>,
}

impl Settings {
    pub(super) fn allows_type(&self, content_type: &[u8]) -> bool {
        let media = content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        self.content_types.iter().any(|rule| {
            let rule = rule.as_bytes();
            if rule.ends_with(b"/") {
                media.len() > rule.len() && media[..rule.len()].eq_ignore_ascii_case(rule)
            } else if rule.starts_with(b"+") {
                media.len() > rule.len()
                    && media[media.len() - rule.len()..].eq_ignore_ascii_case(rule)
            } else {
                media.eq_ignore_ascii_case(rule)
            }
        })
    }
}

/// Registers [`ResponseCompression`]: levels per algorithm, the minimum
/// size, the content-type allow-list and upstream decompression.
///
/// Levels: gzip 1–9, brotli 1–11, zstd 1–22; a higher level is clamped to
/// the algorithm's maximum and 0 turns the algorithm off.
///
/// The module's [order](HttpModuleBuilder::order) is -100: it runs after
/// the modules of default order, so they see the body before it is
/// encoded.
#[derive(Debug)]
pub struct ResponseCompressionBuilder {
    pub(super) settings: Settings,
}

impl ResponseCompressionBuilder {
    /// Compress with every algorithm at `level` (0: off), with the default
    /// minimum size and content types, and no upstream decompression; the
    /// builder to register, as in Pingora.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_core::modules::http::{HttpModules, compression::ResponseCompressionBuilder};
    /// let mut modules = HttpModules::new();
    /// modules.add_module(ResponseCompressionBuilder::enable(6));
    /// ```
    pub fn enable(level: u32) -> ModuleBuilder {
        Self::new(level).build()
    }

    /// A builder with every algorithm at `level` and the defaults, to
    /// configure further.
    pub fn new(level: u32) -> Self {
        Self {
            settings: Settings {
                levels: [level; 3],
                decompress: [false; 3],
                min_size: DEFAULT_MIN_SIZE,
                content_types: DEFAULT_CONTENT_TYPES.iter().map(|&t| t.into()).collect(),
            },
        }
    }

    /// Set one algorithm's level (0: never use it).
    #[must_use]
    pub const fn algorithm_level(mut self, algorithm: Algorithm, level: u32) -> Self {
        self.settings.levels[algorithm.index()] = level;
        self
    }

    /// Leave alone responses whose `Content-Length` is below `bytes`.
    #[must_use]
    pub const fn min_size(mut self, bytes: usize) -> Self {
        self.settings.min_size = bytes;
        self
    }

    /// Replace the content-type allow-list (see [`DEFAULT_CONTENT_TYPES`]
    /// for the forms an entry takes).
    #[must_use]
    pub fn content_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.content_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Decode gzip, brotli and zstd upstream bodies for every request (see
    /// [`ResponseCompression::adjust_decompression`]).
    #[must_use]
    pub const fn decompress(mut self, enabled: bool) -> Self {
        self.settings.decompress = [enabled; 3];
        self
    }

    /// The builder to register with
    /// [`HttpModules::add_module`](crate::modules::http::HttpModules::add_module).
    pub fn build(self) -> ModuleBuilder {
        Box::new(SharedBuilder(Arc::new(self.settings)))
    }
}

/// The registered builder: settings shared by every request's instance.
struct SharedBuilder(Arc<Settings>);

impl HttpModuleBuilder for SharedBuilder {
    fn order(&self) -> i16 {
        -100
    }

    fn init(&self) -> Module {
        Box::new(ResponseCompression {
            levels: self.0.levels,
            decompress: self.0.decompress,
            min_size: self.0.min_size,
            settings: self.0.clone(),
            accepted: None,
            head: false,
            encoder: None,
            decoder: None,
            stats: None,
            decoded: None,
        })
    }
}
