use super::*;
use crate::modules::http::{HttpModuleCtx, HttpModules};
use std::io::Read;

fn ctx(builder: ResponseCompressionBuilder) -> HttpModuleCtx {
    let mut modules = HttpModules::new();
    modules.add_module(builder.build());
    modules.build_ctx()
}

async fn request(ctx: &mut HttpModuleCtx, method: &str, accept: Option<&str>) {
    let mut req = RequestHeader::build(method, b"/", None).unwrap();
    if let Some(accept) = accept {
        req.insert_header("Accept-Encoding", accept).unwrap();
    }
    ctx.request_header_filter(&mut req).await.unwrap();
}

fn response(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
    let mut resp = ResponseHeader::build(status, None).unwrap();
    for (name, value) in fields {
        resp.append_header(name.to_string(), *value).unwrap();
    }
    resp
}

fn header<'a>(resp: &'a ResponseHeader, name: &str) -> Option<&'a str> {
    resp.get_header(name).map(|v| v.to_str().unwrap())
}

const JSON: (&str, &str) = ("Content-Type", "application/json; charset=utf-8");

/// The head after the module, for a GET with `accept`.
async fn head_for(accept: Option<&str>, status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
    let mut ctx = ctx(ResponseCompressionBuilder::new(6));
    request(&mut ctx, "GET", accept).await;
    let mut resp = response(status, fields);
    ctx.response_header_filter(&mut resp, false).await.unwrap();
    resp
}

#[tokio::test]
async fn an_accepted_text_response_is_encoded() {
    let resp = head_for(
        Some("gzip, br"),
        200,
        &[JSON, ("Content-Length", "5000"), ("ETag", "\"v1\"")],
    )
    .await;
    assert_eq!(header(&resp, "content-encoding"), Some("br"));
    assert_eq!(header(&resp, "content-length"), None);
    assert_eq!(header(&resp, "etag"), Some("W/\"v1\""));
    assert_eq!(header(&resp, "vary"), Some("Accept-Encoding"));
}

#[tokio::test]
async fn vary_is_merged_and_weak_etags_stay() {
    let resp = head_for(
        Some("zstd"),
        200,
        &[JSON, ("Vary", "Origin"), ("ETag", "W/\"v1\"")],
    )
    .await;
    assert_eq!(header(&resp, "content-encoding"), Some("zstd"));
    let vary: Vec<_> = resp.get_header_values("vary").collect();
    assert_eq!(vary, ["Origin", "Accept-Encoding"]);
    assert_eq!(header(&resp, "etag"), Some("W/\"v1\""));
    let resp = head_for(Some("gzip"), 200, &[JSON, ("Vary", "accept-encoding, x")]).await;
    assert_eq!(resp.get_header_values("vary").count(), 1);
}

#[tokio::test]
async fn vary_without_encoding_when_the_client_accepts_none() {
    for accept in [None, Some("identity"), Some("deflate")] {
        let resp = head_for(accept, 200, &[JSON]).await;
        assert_eq!(header(&resp, "content-encoding"), None, "{accept:?}");
        assert_eq!(header(&resp, "vary"), Some("Accept-Encoding"), "{accept:?}");
    }
}

#[tokio::test]
async fn responses_left_alone() {
    let cases: &[(u16, &[(&str, &str)])] = &[
        (204, &[JSON]),
        (304, &[JSON]),
        (206, &[JSON, ("Content-Range", "bytes 0-9/100")]),
        (200, &[JSON, ("Content-Range", "bytes 0-9/100")]),
        (200, &[JSON, ("Content-Encoding", "gzip")]),
        (200, &[JSON, ("Cache-Control", "public, No-Transform")]),
        (200, &[JSON, ("Content-Length", "100")]),
        (200, &[("Content-Type", "image/png")]),
        (200, &[("Content-Type", "application/octet-stream")]),
        (200, &[]),
    ];
    for (status, fields) in cases {
        let resp = head_for(Some("gzip, br, zstd"), *status, fields).await;
        let encoding = header(&resp, "content-encoding");
        assert!(encoding.is_none() || encoding == Some("gzip"), "{fields:?}");
        assert_eq!(header(&resp, "vary"), None, "{status} {fields:?}");
    }
}

#[tokio::test]
async fn head_requests_and_bodyless_responses_are_left_alone() {
    let mut ctx = ctx(ResponseCompressionBuilder::new(6));
    request(&mut ctx, "HEAD", Some("gzip")).await;
    let mut resp = response(200, &[JSON]);
    ctx.response_header_filter(&mut resp, false).await.unwrap();
    assert_eq!(header(&resp, "content-encoding"), None);

    let mut ctx = self::ctx(ResponseCompressionBuilder::new(6));
    request(&mut ctx, "GET", Some("gzip")).await;
    let mut resp = response(200, &[JSON]);
    ctx.response_header_filter(&mut resp, true).await.unwrap();
    assert_eq!(header(&resp, "content-encoding"), None);
}

#[test]
fn content_type_rules() {
    let settings = ResponseCompressionBuilder::new(1).settings;
    for allowed in [
        "text/html",
        "TEXT/CSS; charset=utf-8",
        "application/json",
        "application/problem+json",
        "application/atom+xml",
        "image/svg+xml",
        "application/wasm",
    ] {
        assert!(settings.allows_type(allowed.as_bytes()), "{allowed}");
    }
    for refused in [
        "text/",
        "image/png",
        "video/mp4",
        "application/zip",
        "+json",
        "",
    ] {
        assert!(!settings.allows_type(refused.as_bytes()), "{refused}");
    }
}

#[tokio::test]
async fn per_request_adjustments() {
    let mut ctx = ctx(ResponseCompressionBuilder::new(6).min_size(0));
    request(&mut ctx, "GET", Some("br, gzip")).await;
    let module = ctx.get_mut::<ResponseCompression>().unwrap();
    module.adjust_algorithm_level(Algorithm::Brotli, 0);
    let mut resp = response(200, &[JSON, ("Content-Length", "10")]);
    ctx.response_header_filter(&mut resp, false).await.unwrap();
    assert_eq!(header(&resp, "content-encoding"), Some("gzip"));

    let mut ctx = self::ctx(ResponseCompressionBuilder::new(6));
    request(&mut ctx, "GET", Some("br, gzip")).await;
    let module = ctx.get_mut::<ResponseCompression>().unwrap();
    module.adjust_level(0);
    assert!(!module.is_enabled());
    let mut resp = response(200, &[JSON]);
    ctx.response_header_filter(&mut resp, false).await.unwrap();
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(header(&resp, "vary"), None);
}

#[tokio::test]
async fn body_is_encoded_piece_by_piece_and_counted() {
    let mut ctx = ctx(ResponseCompressionBuilder::new(6));
    request(&mut ctx, "GET", Some("gzip")).await;
    let mut resp = response(200, &[("Content-Type", "text/plain")]);
    ctx.response_header_filter(&mut resp, false).await.unwrap();
    let text = "hello, world. ".repeat(1000);
    let mut wire = Vec::new();
    for piece in text.as_bytes().chunks(1000) {
        let mut body = Some(Bytes::copy_from_slice(piece));
        ctx.response_body_filter(&mut body, false).unwrap();
        wire.extend_from_slice(&body.unwrap());
    }
    let mut body = None;
    ctx.response_body_filter(&mut body, true).unwrap();
    wire.extend_from_slice(&body.unwrap());
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&wire[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, text);
    let stats = ctx
        .get::<ResponseCompression>()
        .unwrap()
        .compression_stats();
    assert_eq!(
        stats,
        Some((Algorithm::Gzip, text.len() as u64, wire.len() as u64))
    );
}

#[tokio::test]
async fn upstream_body_is_decoded_then_encoded_again() {
    let text = "<p>plain text for the filters</p>".repeat(200);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    let coded = gz.finish().unwrap();

    let mut ctx = ctx(ResponseCompressionBuilder::new(6));
    request(&mut ctx, "GET", Some("zstd")).await;
    ctx.get_mut::<ResponseCompression>()
        .unwrap()
        .adjust_decompression(true);
    let length = coded.len().to_string();
    let mut resp = response(
        200,
        &[
            ("Content-Type", "text/html"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", &length),
            ("ETag", "\"x\""),
        ],
    );
    ctx.upstream_response_header_filter(&mut resp, false)
        .unwrap();
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(header(&resp, "content-length"), None);
    assert_eq!(header(&resp, "etag"), Some("W/\"x\""));
    let mut plain = Vec::new();
    for piece in coded.chunks(50) {
        let mut body = Some(Bytes::copy_from_slice(piece));
        ctx.upstream_response_body_filter(&mut body, false).unwrap();
        plain.extend_from_slice(&body.unwrap());
    }
    let mut body = None;
    ctx.upstream_response_body_filter(&mut body, true).unwrap();
    plain.extend_from_slice(&body.unwrap());
    assert_eq!(plain, text.as_bytes());
    let module = ctx.get::<ResponseCompression>().unwrap();
    assert_eq!(module.decompressed_from(), Some(Algorithm::Gzip));

    ctx.response_header_filter(&mut resp, false).await.unwrap();
    assert_eq!(header(&resp, "content-encoding"), Some("zstd"));
}

#[tokio::test]
async fn decompression_is_off_by_default_and_skips_ranges() {
    let mut ctx = ctx(ResponseCompressionBuilder::new(6));
    request(&mut ctx, "GET", Some("gzip")).await;
    let mut resp = response(200, &[("Content-Encoding", "gzip")]);
    ctx.upstream_response_header_filter(&mut resp, false)
        .unwrap();
    assert_eq!(header(&resp, "content-encoding"), Some("gzip"));

    let mut ctx = self::ctx(ResponseCompressionBuilder::new(6).decompress(true));
    request(&mut ctx, "GET", Some("gzip")).await;
    let mut resp = response(206, &[("Content-Encoding", "gzip")]);
    ctx.upstream_response_header_filter(&mut resp, false)
        .unwrap();
    assert_eq!(header(&resp, "content-encoding"), Some("gzip"));
    let mut resp = response(200, &[("Content-Encoding", "gzip, br")]);
    ctx.upstream_response_header_filter(&mut resp, false)
        .unwrap();
    assert_eq!(header(&resp, "content-encoding"), Some("gzip, br"));
}

#[tokio::test]
async fn a_corrupt_upstream_body_is_an_error() {
    let mut ctx = ctx(ResponseCompressionBuilder::new(0).decompress(true));
    request(&mut ctx, "GET", None).await;
    let mut resp = response(200, &[("Content-Encoding", "br")]);
    ctx.upstream_response_header_filter(&mut resp, false)
        .unwrap();
    let mut body = Some(Bytes::from_static(b"\xff\xff\xff not brotli at all"));
    let first = ctx.upstream_response_body_filter(&mut body, false);
    let mut end = None;
    assert!(first.is_err() || ctx.upstream_response_body_filter(&mut end, true).is_err());
}
