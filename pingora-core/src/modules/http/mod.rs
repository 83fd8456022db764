//! The HTTP module chain: [`HttpModule`]s see every request head, request
//! body piece, response head and response body piece of a downstream
//! exchange, in a fixed order.
//!
//! A module is registered once, as an [`HttpModuleBuilder`], in
//! [`HttpModules`]; each request gets fresh instances from
//! [`HttpModules::build_ctx`], an [`HttpModuleCtx`] that runs them in
//! order. Where the chain runs relative to a proxy's own phases is the
//! proxy's business; `pingora-proxy` documents it on `ProxyHttp` (in
//! short: request hooks before the user's filters of the same kind,
//! response hooks after them, right before the bytes go out).
//!
//! Built-in modules ([`compression`], gRPC-web) are modules like a user's.
//!
//! # Examples
//!
//! A module that tags every response and counts the body bytes it sent:
//!
//! ```
//! use async_trait::async_trait;
//! use bytes::Bytes;
//! use pingora_core::header::ResponseHeader;
//! use pingora_core::modules::http::{HttpModule, HttpModuleBuilder, HttpModules, Module};
//! use std::any::Any;
//!
//! #[derive(Default)]
//! struct Count {
//!     bytes: usize,
//! }
//!
//! #[async_trait]
//! impl HttpModule for Count {
//!     async fn response_header_filter(
//!         &mut self,
//!         resp: &mut ResponseHeader,
//!         _end_of_stream: bool,
//!     ) -> pingora_core::Result<()> {
//!         resp.insert_header("X-Counted", "yes")
//!     }
//!
//!     fn response_body_filter(
//!         &mut self,
//!         body: &mut Option<Bytes>,
//!         _end_of_stream: bool,
//!     ) -> pingora_core::Result<()> {
//!         self.bytes += body.as_ref().map_or(0, Bytes::len);
//!         Ok(())
//!     }
//!
//!     fn as_any(&self) -> &dyn Any {
//!         self
//!     }
//!     fn as_any_mut(&mut self) -> &mut dyn Any {
//!         self
//!     }
//! }
//!
//! struct CountBuilder;
//!
//! impl HttpModuleBuilder for CountBuilder {
//!     fn init(&self) -> Module {
//!         Box::new(Count::default())
//!     }
//! }
//!
//! let mut modules = HttpModules::new();
//! modules.add_module(Box::new(CountBuilder));
//! let ctx = modules.build_ctx();
//! assert_eq!(ctx.get::<Count>().map(|c| c.bytes), Some(0));
//! ```

pub mod compression;
pub mod grpc_web;

use crate::header::{RequestHeader, ResponseHeader};
use bytes::Bytes;
use http::HeaderMap;
use pingora_error::Result;
use std::any::Any;

pub use async_trait::async_trait;

/// One module's filters for one request. Every hook has a default that
/// changes nothing.
///
/// The hooks run in this order for a request: [`request_header_filter`](Self::request_header_filter)
/// once, [`request_body_filter`](Self::request_body_filter) per piece of
/// request body read (the last with `end_of_stream`), for a response from
/// the upstream [`upstream_response_header_filter`](Self::upstream_response_header_filter)
/// and [`upstream_response_body_filter`](Self::upstream_response_body_filter)
/// as it arrives (before the user's phases), then
/// [`response_header_filter`](Self::response_header_filter) once for the
/// final response head, [`response_body_filter`](Self::response_body_filter)
/// per piece of response body (the last with `end_of_stream`, with no
/// piece when the body ended without one), and
/// [`response_trailer_filter`](Self::response_trailer_filter) once at the
/// end of the response. A response that ends before a head was written
/// through the chain (an error answered without a body) sees no response
/// hook.
///
/// Implemented with `#[async_trait]` (re-exported as
/// [`async_trait`](crate::modules::http::async_trait)): modules are kept as
/// trait objects, which native `async fn` in traits cannot be yet.
#[async_trait]
pub trait HttpModule {
    /// Inspect or change the request head, before the user's request
    /// phases see it.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    async fn request_header_filter(&mut self, _req: &mut RequestHeader) -> Result<()> {
        Ok(())
    }

    /// Inspect or change a piece of request body as it is read from the
    /// client; `end_of_stream` is set on the last call. Setting `body` to
    /// `None` drops the piece.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    async fn request_body_filter(
        &mut self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Inspect or change the upstream's final response head as it
    /// arrives, before the user's response phases (and the cache) see
    /// it; `end_of_stream` says no body follows. For a module that must
    /// change what those phases see, such as upstream decompression. Not
    /// called for a response served from cache or written by a phase.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    fn upstream_response_header_filter(
        &mut self,
        _resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Inspect or change a piece of upstream response body as it
    /// arrives, before the user's body phases (and the cache) see it;
    /// `end_of_stream` is set on the last call. Pairs with
    /// [`upstream_response_header_filter`](Self::upstream_response_header_filter).
    ///
    /// # Errors
    ///
    /// An error ends the request; the connection is closed.
    fn upstream_response_body_filter(
        &mut self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Inspect or change the final response head just before it is
    /// written; `end_of_stream` says no body follows.
    ///
    /// # Errors
    ///
    /// An error ends the request.
    async fn response_header_filter(
        &mut self,
        _resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Inspect or change a piece of response body just before it is
    /// written; `end_of_stream` is set on the last call, which may carry
    /// no piece (a module that holds bytes back emits them then).
    ///
    /// # Errors
    ///
    /// An error ends the request; the connection is closed.
    fn response_body_filter(
        &mut self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Inspect or change the response trailers (`None` when there are
    /// none) at the end of the response. Bytes returned are written as
    /// the last piece of body, before the trailers (for a protocol that
    /// carries trailers in the body, such as gRPC-web).
    ///
    /// # Errors
    ///
    /// An error ends the request; the connection is closed.
    fn response_trailer_filter(
        &mut self,
        _trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        Ok(None)
    }

    /// The module as [`Any`], for [`HttpModuleCtx::get`].
    fn as_any(&self) -> &dyn Any;

    /// The module as mutable [`Any`], for [`HttpModuleCtx::get_mut`].
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A module instance for one request.
pub type Module = Box<dyn HttpModule + Send + Sync + 'static>;

/// Makes a module instance for each request.
pub trait HttpModuleBuilder {
    /// Where the module runs in the chain: higher first, for every hook
    /// (request and response alike); modules of equal order run in the
    /// order they were added. Default 0.
    fn order(&self) -> i16 {
        0
    }

    /// A fresh module for a new request.
    fn init(&self) -> Module;
}

/// A registered module builder.
pub type ModuleBuilder = Box<dyn HttpModuleBuilder + Send + Sync + 'static>;

/// The modules registered on a service, in running order.
#[derive(Default)]
pub struct HttpModules {
    builders: Vec<ModuleBuilder>,
}

impl std::fmt::Debug for HttpModules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpModules")
            .field("modules", &self.builders.len())
            .finish()
    }
}

impl HttpModules {
    /// No modules.
    pub const fn new() -> Self {
        Self {
            builders: Vec::new(),
        }
    }

    /// Register a module; see [`HttpModuleBuilder::order`] for where it
    /// runs.
    pub fn add_module(&mut self, builder: ModuleBuilder) {
        self.builders.push(builder);
        // Stable: equal orders keep the order they were added in.
        self.builders.sort_by_key(|b| std::cmp::Reverse(b.order()));
    }

    /// How many modules are registered.
    pub fn len(&self) -> usize {
        self.builders.len()
    }

    /// Whether no module is registered.
    pub fn is_empty(&self) -> bool {
        self.builders.is_empty()
    }

    /// Fresh instances of every module, for one request. With no module
    /// registered this allocates nothing.
    pub fn build_ctx(&self) -> HttpModuleCtx {
        HttpModuleCtx {
            modules: self.builders.iter().map(|b| b.init()).collect(),
        }
    }
}

/// The module instances of one request, run in order.
#[derive(Default)]
pub struct HttpModuleCtx {
    modules: Vec<Module>,
}

impl std::fmt::Debug for HttpModuleCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpModuleCtx")
            .field("modules", &self.modules.len())
            .finish()
    }
}

impl HttpModuleCtx {
    /// No modules: every filter passes everything through.
    pub const fn empty() -> Self {
        Self {
            modules: Vec::new(),
        }
    }

    /// Whether there is no module to run.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// This request's instance of module type `T`, if registered.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.modules
            .iter()
            .find_map(|m| m.as_any().downcast_ref::<T>())
    }

    /// This request's instance of module type `T`, to change (for
    /// example to turn it off for this request).
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.modules
            .iter_mut()
            .find_map(|m| m.as_any_mut().downcast_mut::<T>())
    }

    /// Run every module's [`HttpModule::request_header_filter`].
    ///
    /// # Errors
    ///
    /// The first module's error; later modules do not run.
    pub async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        for m in &mut self.modules {
            m.request_header_filter(req).await?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::request_body_filter`].
    ///
    /// # Errors
    ///
    /// The first module's error; later modules do not run.
    pub async fn request_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        for m in &mut self.modules {
            m.request_body_filter(body, end_of_stream).await?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::upstream_response_header_filter`].
    ///
    /// # Errors
    ///
    /// The first module's error; later modules do not run.
    pub fn upstream_response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        for m in &mut self.modules {
            m.upstream_response_header_filter(resp, end_of_stream)?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::upstream_response_body_filter`].
    ///
    /// # Errors
    ///
    /// The first module's error; later modules do not run.
    pub fn upstream_response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        for m in &mut self.modules {
            m.upstream_response_body_filter(body, end_of_stream)?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::response_header_filter`].
    ///
    /// # Errors
    ///
    /// The first module's error; later modules do not run.
    pub async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        for m in &mut self.modules {
            m.response_header_filter(resp, end_of_stream).await?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::response_body_filter`].
    ///
    /// # Errors
    ///
    /// The first module's error; later modules do not run.
    pub fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        for m in &mut self.modules {
            m.response_body_filter(body, end_of_stream)?;
        }
        Ok(())
    }

    /// Run every module's [`HttpModule::response_trailer_filter`]; the
    /// body bytes they return, joined in module order.
    ///
    /// # Errors
    ///
    /// The first module's error; later modules do not run.
    pub fn response_trailer_filter(
        &mut self,
        trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        let mut out: Option<Vec<u8>> = None;
        for m in &mut self.modules {
            if let Some(bytes) = m.response_trailer_filter(trailers)? {
                out.get_or_insert_with(Vec::new).extend_from_slice(&bytes);
            }
        }
        Ok(out.map(Bytes::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends its name to the request path and to each body piece.
    struct Tag(&'static str);

    #[async_trait]
    impl HttpModule for Tag {
        async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
            let name = format!("x-{}", self.0);
            req.insert_header(name.as_str(), "1")
        }
        fn response_body_filter(&mut self, body: &mut Option<Bytes>, _: bool) -> Result<()> {
            let mut piece = body.take().map(|b| b.to_vec()).unwrap_or_default();
            piece.extend_from_slice(self.0.as_bytes());
            *body = Some(piece.into());
            Ok(())
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
    }

    struct TagBuilder(&'static str, i16);

    impl HttpModuleBuilder for TagBuilder {
        fn order(&self) -> i16 {
            self.1
        }
        fn init(&self) -> Module {
            Box::new(Tag(self.0))
        }
    }

    #[tokio::test]
    async fn runs_in_order_higher_first() {
        let mut modules = HttpModules::new();
        modules.add_module(Box::new(TagBuilder("a", 0)));
        modules.add_module(Box::new(TagBuilder("b", 10)));
        modules.add_module(Box::new(TagBuilder("c", 0)));
        let mut ctx = modules.build_ctx();
        let mut body = Some(Bytes::from_static(b">"));
        ctx.response_body_filter(&mut body, true).unwrap();
        assert_eq!(body.unwrap(), ">bac");
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        ctx.request_header_filter(&mut req).await.unwrap();
        assert!(req.has_header("x-a") && req.has_header("x-b") && req.has_header("x-c"));
        assert_eq!(ctx.get::<Tag>().map(|t| t.0), Some("b"));
        ctx.get_mut::<Tag>().unwrap().0 = "z";
        assert!(ctx.get::<String>().is_none());
        assert!(HttpModuleCtx::empty().is_empty());
    }
}
