//! The header store shared by requests and responses: a lookup map plus the
//! fields in wire order with their original name case.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use pingora_error::{Error, ErrorType, Result};

/// One field as it appears on the wire.
#[derive(Debug, Clone)]
struct Field {
    name: HeaderName,
    /// The name as written, when it differs from the lowercase `name`.
    case: Option<Bytes>,
    value: HeaderValue,
}

impl Field {
    fn wire_name(&self) -> &[u8] {
        self.case
            .as_deref()
            .unwrap_or_else(|| self.name.as_str().as_bytes())
    }
}

/// Header fields in wire order plus an `http::HeaderMap` for lookups.
///
/// Invariant: `map` holds exactly the values of `fields`, and the values of
/// one name appear in `map` in the same order as in `fields`. Every mutation
/// goes through this type to keep that true.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderList {
    map: HeaderMap,
    fields: Vec<Field>,
}

/// Turn a user-supplied name into the lookup name and the wire case.
fn split_name(name: &str) -> Result<(HeaderName, Option<Bytes>)> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "invalid header name", e))?;
    let case = (parsed.as_str() != name).then(|| Bytes::copy_from_slice(name.as_bytes()));
    Ok((parsed, case))
}

fn to_value<V>(value: V) -> Result<HeaderValue>
where
    V: TryInto<HeaderValue>,
    V::Error: std::error::Error + Send + Sync + 'static,
{
    value
        .try_into()
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "invalid header value", e))
}

impl HeaderList {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            map: HeaderMap::with_capacity(n),
            fields: Vec::with_capacity(n),
        }
    }

    pub(crate) const fn map(&self) -> &HeaderMap {
        &self.map
    }

    /// Add a field parsed from the wire: `case` is the name as received.
    pub(crate) fn push_parsed(&mut self, name: HeaderName, case: Bytes, value: HeaderValue) {
        let case = (name.as_str().as_bytes() != case.as_ref()).then_some(case);
        self.map.append(name.clone(), value.clone());
        self.fields.push(Field { name, case, value });
    }

    pub(crate) fn append<V>(&mut self, name: &str, value: V) -> Result<()>
    where
        V: TryInto<HeaderValue>,
        V::Error: std::error::Error + Send + Sync + 'static,
    {
        let (name, case) = split_name(name)?;
        let value = to_value(value)?;
        self.map.append(name.clone(), value.clone());
        self.fields.push(Field { name, case, value });
        Ok(())
    }

    /// Replace every field of this name with one field. The new field takes
    /// the place of the first old one, so forwarding order is kept.
    pub(crate) fn insert<V>(&mut self, name: &str, value: V) -> Result<()>
    where
        V: TryInto<HeaderValue>,
        V::Error: std::error::Error + Send + Sync + 'static,
    {
        let (name, case) = split_name(name)?;
        let value = to_value(value)?;
        let first = self.fields.iter().position(|f| f.name == name);
        self.map.insert(name.clone(), value.clone());
        let field = Field { name, case, value };
        match first {
            Some(at) => {
                let keep = field.name.clone();
                let mut i = 0;
                self.fields.retain(|f| {
                    let keep_it = i == at || f.name != keep;
                    i += 1;
                    keep_it
                });
                self.fields[at] = field;
            }
            None => self.fields.push(field),
        }
        Ok(())
    }

    /// Remove every field of this name, returning the first value.
    pub(crate) fn remove(&mut self, name: &str) -> Option<HeaderValue> {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        self.fields.retain(|f| f.name != name);
        self.map.remove(&name)
    }

    /// The fields in wire order: name as written, value.
    pub(crate) fn wire(&self) -> impl Iterator<Item = (&[u8], &HeaderValue)> {
        self.fields.iter().map(|f| (f.wire_name(), &f.value))
    }

    /// Write `name: value\r\n` for every field, in wire order.
    pub(crate) fn write_to(&self, out: &mut bytes::BytesMut) {
        for (name, value) in self.wire() {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &HeaderList) -> Vec<String> {
        list.wire()
            .map(|(n, v)| format!("{}={}", String::from_utf8_lossy(n), v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn insert_keeps_position_and_case() {
        let mut l = HeaderList::default();
        l.append("Host", "a").unwrap();
        l.append("X-Foo", "1").unwrap();
        l.append("Accept", "b").unwrap();
        l.append("x-foo", "2").unwrap();
        l.insert("X-FOO", "3").unwrap();
        assert_eq!(names(&l), ["Host=a", "X-FOO=3", "Accept=b"]);
        assert_eq!(l.map().get_all("x-foo").iter().count(), 1);
        assert_eq!(l.remove("host").unwrap(), "a");
        assert_eq!(names(&l), ["X-FOO=3", "Accept=b"]);
        assert!(l.remove("missing").is_none());
        assert!(l.remove("bad name").is_none());
    }

    #[test]
    fn rejects_injection() {
        let mut l = HeaderList::default();
        assert!(l.append("X-A", "v\r\nEvil: 1").is_err());
        assert!(l.append("X A", "v").is_err());
        assert!(l.append("X:A", "v").is_err());
        assert_eq!(l.wire().count(), 0);
    }
}
