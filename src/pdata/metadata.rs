//! What a receiver knew of the request a batch came in, as upstream's `client.Info`:
//! the request's headers (gRPC metadata), kept only with the otlp receiver's
//! `include_metadata`, and what the server authenticator learnt of the client. Keys are
//! matched without regard to case, as upstream's `client.Metadata` does. It also
//! carries the client's address (upstream's `client.Info.Addr`), which the
//! `k8sattributes` processor finds a pod by; the `batch` processor, like upstream's,
//! keeps only its `metadata_keys`, so the address goes no further than a batch.

use std::net::IpAddr;
use std::sync::Arc;

/// A batch's request metadata; empty (and free) unless a receiver kept some.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Metadata {
    entries: Option<Arc<Entries>>,
    addr: Option<IpAddr>,
}

#[derive(Debug, Default, PartialEq, Eq, Hash)]
struct Entries {
    /// Lower-case key and its values, sorted by key.
    headers: Vec<(String, Vec<String>)>,
    /// What the authenticator set (`username`, `raw`), sorted by key.
    auth: Vec<(String, String)>,
}

impl Metadata {
    /// The metadata of a request with these headers (all of them, as upstream) and
    /// this authentication data.
    pub fn from_request(headers: Option<&http::HeaderMap>, auth: Vec<(String, String)>) -> Metadata {
        let pairs =
            headers.into_iter().flatten().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        Metadata::gather(pairs, auth)
    }

    /// Metadata from key and values, for tests and for batches a processor builds.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Metadata {
        Metadata::gather(pairs, Vec::new())
    }

    /// Values grouped under their lower-case key, in the order given; keys sorted.
    fn gather<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, mut auth: Vec<(String, String)>) -> Metadata {
        let mut headers: Vec<(String, Vec<String>)> = Vec::new();
        for (key, value) in pairs {
            let key = key.to_ascii_lowercase();
            match headers.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value.to_string()),
                None => headers.push((key, vec![value.to_string()])),
            }
        }
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        auth.sort();
        Metadata::of(Entries { headers, auth })
    }

    fn of(entries: Entries) -> Metadata {
        if entries.headers.is_empty() && entries.auth.is_empty() {
            Metadata::default()
        } else {
            Metadata { entries: Some(Arc::new(entries)), addr: None }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_none() && self.addr.is_none()
    }

    /// The same, from a client at `addr`.
    pub fn with_addr(mut self, addr: Option<IpAddr>) -> Metadata {
        // An IPv4 client on a dual-stack socket shows as `::ffff:a.b.c.d`.
        self.addr = addr.map(|a| a.to_canonical());
        self
    }

    /// The client's address, when a receiver knew it.
    pub fn addr(&self) -> Option<IpAddr> {
        self.addr
    }

    /// Appends a byte form for a persistent queue: counts and strings, each a u32
    /// length (little-endian) then bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let put = |out: &mut Vec<u8>, text: &str| {
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        };
        let empty = Entries::default();
        let entries = self.entries.as_deref().unwrap_or(&empty);
        out.extend_from_slice(&(entries.headers.len() as u32).to_le_bytes());
        for (key, values) in &entries.headers {
            put(out, key);
            out.extend_from_slice(&(values.len() as u32).to_le_bytes());
            for value in values {
                put(out, value);
            }
        }
        out.extend_from_slice(&(entries.auth.len() as u32).to_le_bytes());
        for (key, value) in &entries.auth {
            put(out, key);
            put(out, value);
        }
        // Last, so that what an earlier version wrote (no address) still reads.
        if let Some(addr) = self.addr {
            put(out, &addr.to_string());
        }
    }

    /// Reads what [`Metadata::encode`] wrote; `None` when `bytes` is not that.
    pub fn decode(bytes: &[u8]) -> Option<Metadata> {
        struct Reader<'a>(&'a [u8]);
        impl Reader<'_> {
            fn count(&mut self) -> Option<usize> {
                let (word, rest) = self.0.split_at_checked(4)?;
                self.0 = rest;
                Some(u32::from_le_bytes(word.try_into().ok()?) as usize)
            }
            fn text(&mut self) -> Option<String> {
                let len = self.count()?;
                let (text, rest) = self.0.split_at_checked(len)?;
                self.0 = rest;
                String::from_utf8(text.to_vec()).ok()
            }
        }
        let mut reader = Reader(bytes);
        let mut entries = Entries::default();
        for _ in 0..reader.count()? {
            let key = reader.text()?;
            let values = (0..reader.count()?).map(|_| reader.text()).collect::<Option<Vec<_>>>()?;
            entries.headers.push((key, values));
        }
        for _ in 0..reader.count()? {
            entries.auth.push((reader.text()?, reader.text()?));
        }
        let addr = match reader.0.is_empty() {
            true => None,
            false => Some(reader.text()?.parse().ok()?),
        };
        reader.0.is_empty().then(|| Metadata::of(entries).with_addr(addr))
    }

    /// The values of a header, in the order the request had them; none if absent.
    pub fn get(&self, key: &str) -> &[String] {
        let Some(entries) = &self.entries else { return &[] };
        let found = entries.headers.binary_search_by(|(k, _)| cmp_ignore_case(k, key));
        found.map(|i| entries.headers[i].1.as_slice()).unwrap_or(&[])
    }

    /// An attribute the server authenticator set (`auth.username` in `from_context`).
    pub fn auth(&self, key: &str) -> Option<&str> {
        let entries = self.entries.as_ref()?;
        entries.auth.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `from_context`'s lookup: `metadata.<key>` or `auth.<attribute>`; a bare key is
    /// a metadata key, as upstream's attributes processor reads it. Several values are
    /// joined with `;`, as upstream joins them.
    pub fn lookup(&self, from_context: &str) -> Option<String> {
        if let Some(attribute) = from_context.strip_prefix("auth.") {
            return self.auth(attribute).map(str::to_string);
        }
        let key = from_context.strip_prefix("metadata.").unwrap_or(from_context);
        let values = self.get(key);
        (!values.is_empty()).then(|| values.join(";"))
    }

    /// Only these keys (for a `batch` processor's `metadata_keys` and a queue's
    /// partition): what identifies a batch and what it carries on.
    pub fn restrict(&self, keys: &[String]) -> Metadata {
        if keys.is_empty() || self.entries.is_none() {
            return Metadata::default();
        }
        let mut entries = Entries::default();
        for key in keys {
            let values = self.get(key);
            if !values.is_empty() {
                entries.headers.push((key.to_ascii_lowercase(), values.to_vec()));
            }
        }
        entries.headers.sort_by(|a, b| a.0.cmp(&b.0));
        entries.headers.dedup_by(|a, b| a.0 == b.0);
        Metadata::of(entries)
    }
}

/// Orders `stored` (lower case) against `key` (any case) as if both were lower case.
fn cmp_ignore_case(stored: &str, key: &str) -> std::cmp::Ordering {
    stored.bytes().cmp(key.bytes().map(|b| b.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_metadata_reads_back_and_garbage_does_not() {
        let m = Metadata::gather(
            [("X-Tenant", "a"), ("x-tenant", "b"), ("k", "")],
            vec![("username".into(), "ann".into())],
        );
        let from = Metadata::default().with_addr(Some("10.1.2.3".parse().unwrap()));
        for metadata in [m.clone(), Metadata::default(), m.with_addr(Some("::1".parse().unwrap())), from] {
            let mut bytes = Vec::new();
            metadata.encode(&mut bytes);
            assert_eq!(Metadata::decode(&bytes), Some(metadata.clone()));
            assert_eq!(Metadata::decode(&bytes[..bytes.len() - 1]), None);
        }
        assert_eq!(Metadata::decode(&[0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn keys_match_without_case_and_values_keep_their_order() {
        let mut headers = http::HeaderMap::new();
        headers.append("X-Tenant", "acme".parse().unwrap());
        headers.append("x-tenant", "beta".parse().unwrap());
        headers.append("content-type", "application/x-protobuf".parse().unwrap());
        let m = Metadata::from_request(Some(&headers), vec![("username".into(), "ann".into())]);
        assert_eq!(m.get("X-TENANT"), ["acme", "beta"]);
        assert_eq!(m.lookup("metadata.x-tenant").as_deref(), Some("acme;beta"));
        assert_eq!(m.lookup("x-tenant").as_deref(), Some("acme;beta"));
        assert_eq!(m.lookup("auth.username").as_deref(), Some("ann"));
        assert_eq!(m.lookup("metadata.absent"), None);
        assert!(Metadata::from_request(None, vec![]).is_empty());
    }

    #[test]
    fn restricting_keeps_only_the_keys_named() {
        let m = Metadata::from_pairs([("x-tenant", "acme"), ("x-other", "1")]);
        let r = m.restrict(&["X-Tenant".into(), "x-missing".into()]);
        assert_eq!(r, Metadata::from_pairs([("x-tenant", "acme")]));
        assert!(m.restrict(&[]).is_empty());
        assert_eq!(Metadata::from_pairs([("x-other", "2")]).restrict(&["x-tenant".into()]), Metadata::default());
    }
}
