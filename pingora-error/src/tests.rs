use super::*;
use std::io;

fn io_refused() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused")
}

#[test]
fn new_sets_kind_only() {
    let e = Error::new(ErrorType::ReadError);
    assert_eq!(e.etype(), &ErrorType::ReadError);
    assert_eq!(e.esource(), &ErrorSource::Unset);
    assert!(!e.retry());
    assert!(e.context().is_none());
    assert!(e.direct_cause().is_none());
    assert_eq!(e.to_string(), "ReadError");
}

#[test]
fn new_with_sources() {
    assert_eq!(
        Error::new_up(ErrorType::ConnectRefused).esource(),
        &ErrorSource::Upstream
    );
    assert_eq!(
        Error::new_down(ErrorType::H1Error).esource(),
        &ErrorSource::Downstream
    );
    assert_eq!(
        Error::new_in(ErrorType::InternalError).esource(),
        &ErrorSource::Internal
    );
    let custom = Error::new_str("TooManyThings");
    assert_eq!(custom.etype(), &ErrorType::Custom("TooManyThings"));
    assert_eq!(custom.reason_str(), "TooManyThings");
}

#[test]
fn explain_keeps_static_and_owned_context() {
    let e = Error::explain(ErrorType::InvalidHTTPHeader, "bad header");
    assert_eq!(e.context(), Some("bad header"));
    let name = "x-foo";
    let e = Error::explain(ErrorType::InvalidHTTPHeader, format!("bad header {name}"));
    assert_eq!(e.context(), Some("bad header x-foo"));
    assert_eq!(e.to_string(), "InvalidHTTPHeader context: bad header x-foo");
}

#[test]
fn because_keeps_the_cause() {
    let e = Error::because(ErrorType::ConnectRefused, "connecting", io_refused());
    let cause = e.direct_cause().expect("cause was given");
    assert_eq!(cause.to_string(), "connection refused");
    assert!(cause.downcast_ref::<io::Error>().is_some());
    assert_eq!(
        e.to_string(),
        "ConnectRefused context: connecting cause: connection refused"
    );
}

#[test]
fn e_shortcuts_return_err() {
    let r: Result<()> = Error::e_explain(ErrorType::WriteTimedout, "writing body");
    let e = r.unwrap_err();
    assert_eq!(e.etype(), &ErrorType::WriteTimedout);
    assert_eq!(e.context(), Some("writing body"));

    let r: Result<u8> = Error::e_because(ErrorType::ReadError, "reading", io_refused());
    let e = r.unwrap_err();
    assert!(e.direct_cause().is_some());

    let r: Result<()> = Error::err(ErrorType::HTTPStatus(404));
    assert_eq!(r.unwrap_err().etype().http_status(), Some(404));
}

#[test]
fn source_conversions() {
    let e = Error::new(ErrorType::ReadError).into_up();
    assert_eq!(e.esource(), &ErrorSource::Upstream);
    let e = e.into_down();
    assert_eq!(e.esource(), &ErrorSource::Downstream);
    let e = e.into_in();
    assert_eq!(e.esource(), &ErrorSource::Internal);
    let e = e.into_etype(ErrorType::WriteError);
    assert_eq!(e.etype(), &ErrorType::WriteError);
}

#[test]
fn retry_settings() {
    let mut e = Error::new(ErrorType::ConnectionClosed);
    assert!(!e.retry());
    e.set_retry(true);
    assert!(e.retry());
    assert_eq!(e.retry_type(), RetryType::Decided(true));
    e.set_retry_type(RetryType::ReusedOnly);
    assert!(!e.retry());
    e.decide_reuse(true);
    assert!(e.retry());
    e.set_retry_type(RetryType::ReusedOnly);
    e.decide_reuse(false);
    assert!(!e.retry());
}

#[test]
fn chain_formatting_and_root_cause() {
    let inner = Error::because(ErrorType::ConnectRefused, "tcp connect", io_refused()).into_up();
    let outer = Error::because(ErrorType::ConnectError, "proxying to backend", inner).into_down();
    assert_eq!(
        outer.to_string(),
        "Downstream ConnectError context: proxying to backend cause: \
         Upstream ConnectRefused context: tcp connect cause: connection refused"
    );
    let root = outer.root_cause();
    assert_eq!(root.to_string(), "connection refused");
    assert!(root.downcast_ref::<io::Error>().is_some());

    let alone = Error::new(ErrorType::InternalError);
    assert!(alone.root_cause().downcast_ref::<Error>().is_some());

    // std's source() walks the same chain
    let mut depth = 0;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&*outer);
    while let Some(e) = cur {
        depth += 1;
        cur = e.source();
    }
    assert_eq!(depth, 3);
}

#[test]
fn more_context_prepends() {
    let e = Error::explain(ErrorType::ReadError, "reading header");
    let e = e.more_context("serving 127.0.0.1:1234");
    assert_eq!(e.context(), Some("serving 127.0.0.1:1234: reading header"));
    let e = Error::new(ErrorType::ReadError).more_context("only");
    assert_eq!(e.context(), Some("only"));
}

#[test]
fn setters() {
    let mut e = Error::new(ErrorType::FileOpenError);
    e.set_context("opening conf.yaml");
    e.set_cause(io::Error::new(io::ErrorKind::NotFound, "no such file"));
    assert_eq!(
        e.to_string(),
        "FileOpenError context: opening conf.yaml cause: no such file"
    );
}

#[test]
fn or_err_on_result() {
    let r: std::result::Result<(), io::Error> = Err(io_refused());
    let e = r.or_err(ErrorType::ConnectRefused, "dialing").unwrap_err();
    assert_eq!(e.etype(), &ErrorType::ConnectRefused);
    assert_eq!(e.context(), Some("dialing"));
    assert!(e.direct_cause().is_some());

    let ok: std::result::Result<u8, io::Error> = Ok(7);
    assert_eq!(ok.or_err(ErrorType::ReadError, "never").unwrap(), 7);
}

#[test]
fn or_err_with_is_lazy() {
    let mut called = false;
    let ok: std::result::Result<u8, io::Error> = Ok(1);
    let _ = ok.or_err_with(ErrorType::ReadError, || {
        called = true;
        "x"
    });
    assert!(!called);

    let r: std::result::Result<u8, io::Error> = Err(io_refused());
    let e = r
        .or_err_with(ErrorType::ReadError, || format!("peer {}", 5))
        .unwrap_err();
    assert_eq!(e.context(), Some("peer 5"));
}

#[test]
fn explain_err_drops_the_original() {
    let r: std::result::Result<(), &str> = Err("raw");
    let e = r
        .explain_err(ErrorType::InvalidHTTPHeader, |raw| {
            format!("parse failed: {raw}")
        })
        .unwrap_err();
    assert_eq!(e.context(), Some("parse failed: raw"));
    assert!(e.direct_cause().is_none());
}

#[test]
fn or_fail_is_internal() {
    let r: std::result::Result<(), io::Error> = Err(io_refused());
    let e = r.or_fail().unwrap_err();
    assert_eq!(e.etype(), &ErrorType::InternalError);
    assert!(e.direct_cause().is_some());
}

#[test]
fn option_or_err() {
    let none: Option<u8> = None;
    let e = none
        .or_err(ErrorType::InternalError, "missing")
        .unwrap_err();
    assert_eq!(e.context(), Some("missing"));
    let none: Option<u8> = None;
    let e = none
        .or_err_with(ErrorType::InternalError, || "lazy".to_string())
        .unwrap_err();
    assert_eq!(e.context(), Some("lazy"));
    assert_eq!(Some(3).or_err(ErrorType::InternalError, "x").unwrap(), 3);
}

#[test]
fn err_context_on_boxed_result() {
    let r: Result<()> = Error::e_explain(ErrorType::ReadError, "inner");
    let e = r.err_context(|| "outer").unwrap_err();
    assert_eq!(e.context(), Some("outer: inner"));
}

#[test]
fn from_error_type() {
    let e: BError = ErrorType::H2Error.into();
    assert_eq!(e.etype(), &ErrorType::H2Error);
}

#[test]
fn is_send_sync_static_std_error() {
    fn assert_bounds<T: Send + Sync + 'static + std::error::Error>() {}
    assert_bounds::<Error>();
    // boxes into the std dynamic error types
    let b: Box<dyn std::error::Error + Send + Sync> = Error::new(ErrorType::ReadError);
    assert_eq!(b.to_string(), "ReadError");
}

#[test]
fn pingora_field_names_read_the_same_facts() {
    let mut e = Error::because(ErrorType::ReadError, "reading body", io::Error::other("x"));
    e.as_up();
    assert_eq!(e.etype, *e.etype());
    assert_eq!(e.esource, ErrorSource::Upstream);
    assert_eq!(e.esource, *e.esource());
    assert_eq!(e.context.as_deref(), e.context());
    assert!(e.cause.is_some());
    e.set_retry(true);
    assert_eq!(e.retry, RetryType::Decided(true));
    assert!(e.retry());
    e.as_down();
    assert_eq!(e.esource, ErrorSource::Downstream);
    e.as_in();
    assert_eq!(e.esource, ErrorSource::Internal);
}

#[test]
fn err_shortcuts_set_the_source() {
    let up: Result<()> = Error::err_up(ErrorType::ConnectRefused);
    assert_eq!(up.unwrap_err().esource, ErrorSource::Upstream);
    let down: Result<()> = Error::err_down(ErrorType::ReadError);
    assert_eq!(down.unwrap_err().esource, ErrorSource::Downstream);
    let internal: Result<()> = Error::err_in(ErrorType::InternalError);
    assert_eq!(internal.unwrap_err().esource, ErrorSource::Internal);
    let changed = Error::new(ErrorType::ReadError).into_different(ErrorType::WriteError);
    assert_eq!(changed.etype, ErrorType::WriteError);
}

#[test]
fn root_etype_walks_through_foreign_causes() {
    assert_eq!(
        Error::new(ErrorType::H1Error).root_etype(),
        &ErrorType::H1Error
    );
    let innermost = Error::new(ErrorType::ConnectTimedout);
    let middle = Error::because(ErrorType::ConnectError, "connect", innermost);
    let outer = Error::because(ErrorType::HTTPStatus(502), "proxy", middle);
    assert_eq!(outer.root_etype(), &ErrorType::ConnectTimedout);
    // a foreign innermost cause: the deepest of ours counts
    let io = Error::because(ErrorType::ReadError, "read", io::Error::other("reset"));
    let outer = Error::because(ErrorType::HTTPStatus(502), "proxy", io);
    assert_eq!(outer.root_etype(), &ErrorType::ReadError);
}

#[test]
fn prelude_names_every_variant() {
    use crate::prelude::*;
    let kinds = [
        HTTPStatus(500),
        InternalError,
        ConnectTimedout,
        Custom("x"),
        CustomCode("x", 500),
    ];
    assert_eq!(kinds[0].http_status(), Some(500));
    assert!(kinds.iter().all(|k| !k.as_str().is_empty()));
}
