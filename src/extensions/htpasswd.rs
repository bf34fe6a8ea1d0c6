//! The htpasswd format `basicauth` checks receivers' clients against: one
//! `user:hash` per line, with the hashes Apache's `htpasswd` writes: bcrypt (`-B`),
//! MD5 (`$apr1$`, its default, and `$1$`), SHA-1 (`{SHA}`, `-s`) and salted SHA-1
//! (`{SSHA}`). Other hashes (crypt's SHA-256/512, DES, plain text) are refused when the
//! file is read, naming the line.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};

use super::auth::{Unauthenticated, constant_time_eq};

/// The highest bcrypt cost read; each step doubles the time of a check (17 is about
/// ten seconds of one core).
const MAX_BCRYPT_COST: u32 = 17;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hash {
    Bcrypt(String),
    /// `$apr1$` or `$1$`: the magic, the salt and the whole stored string.
    Md5Crypt {
        magic: &'static str,
        salt: String,
        stored: String,
    },
    Sha1(Vec<u8>),
    SaltedSha1 {
        digest: Vec<u8>,
        salt: Vec<u8>,
    },
}

/// Reads htpasswd text: users and their hashes; blank lines and `#` comments skipped.
pub fn parse(text: &str) -> Result<HashMap<String, Hash>, String> {
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |what: &str| format!("line {}: {what}", n + 1);
        let (user, hash) = line.split_once(':').ok_or_else(|| fail("expected user:hash"))?;
        users.insert(user.to_string(), parse_hash(hash).map_err(|e| fail(&e))?);
    }
    Ok(users)
}

fn parse_hash(hash: &str) -> Result<Hash, String> {
    if ["$2a$", "$2b$", "$2y$", "$2x$"].iter().any(|p| hash.starts_with(p)) {
        // `$2y$10$` + 53 characters of salt and hash.
        let cost: u32 = hash.get(4..6).and_then(|c| c.parse().ok()).ok_or("a bcrypt hash is `$2y$NN$…`")?;
        if hash.len() != 60 || hash.as_bytes()[6] != b'$' {
            return Err("a bcrypt hash is 60 characters".into());
        }
        if !(4..=MAX_BCRYPT_COST).contains(&cost) {
            return Err(format!("bcrypt cost {cost} is outside 4..={MAX_BCRYPT_COST} (htpasswd -C writes up to 17)"));
        }
        return Ok(Hash::Bcrypt(hash.to_string()));
    }
    for magic in ["$apr1$", "$1$"] {
        if let Some(rest) = hash.strip_prefix(magic) {
            let (salt, _) = rest.split_once('$').ok_or("an MD5 hash needs `$salt$hash`")?;
            return Ok(Hash::Md5Crypt { magic, salt: salt.to_string(), stored: hash.to_string() });
        }
    }
    let decode = |b64: &str| STANDARD.decode(b64).map_err(|e| format!("bad base64: {e}"));
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let digest = decode(b64)?;
        return if digest.len() == 20 { Ok(Hash::Sha1(digest)) } else { Err("a {SHA} hash is 20 bytes".into()) };
    }
    if let Some(b64) = hash.strip_prefix("{SSHA}") {
        let mut digest = decode(b64)?;
        if digest.len() <= 20 {
            return Err("an {SSHA} hash is 20 bytes and a salt".into());
        }
        let salt = digest.split_off(20);
        return Ok(Hash::SaltedSha1 { digest, salt });
    }
    Err("unsupported hash: use bcrypt (htpasswd -B), MD5 (htpasswd -m) or SHA-1 (htpasswd -s)".into())
}

impl Hash {
    /// Whether `password` has this hash. bcrypt is slow on purpose: call off the runtime.
    pub fn verify(&self, password: &str) -> bool {
        match self {
            Hash::Bcrypt(stored) => bcrypt::verify(password, stored).unwrap_or(false),
            Hash::Md5Crypt { magic, salt, stored } => {
                constant_time_eq(md5_crypt(password.as_bytes(), salt.as_bytes(), magic).as_bytes(), stored.as_bytes())
            }
            Hash::Sha1(digest) => constant_time_eq(sha1(&[password.as_bytes()]).as_ref(), digest),
            Hash::SaltedSha1 { digest, salt } => constant_time_eq(sha1(&[password.as_bytes(), salt]).as_ref(), digest),
        }
    }
}

fn sha1(parts: &[&[u8]]) -> ring::digest::Digest {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    parts.iter().for_each(|p| context.update(p));
    context.finish()
}

/// The MD5-based crypt of FreeBSD (`$1$`) and Apache (`$apr1$`): the same algorithm
/// with a different magic string. The salt is at most 8 bytes.
pub fn md5_crypt(password: &[u8], salt: &[u8], magic: &str) -> String {
    let salt = &salt[..salt.len().min(8)];
    let alternate = Md5::new().chain_update(password).chain_update(salt).chain_update(password).finalize();
    let mut context = Md5::new().chain_update(password).chain_update(magic).chain_update(salt);
    for chunk in (0..password.len()).step_by(16) {
        context.update(&alternate[..(password.len() - chunk).min(16)]);
    }
    let mut i = password.len();
    while i > 0 {
        context.update(if i & 1 == 1 { &[0u8][..] } else { &password[..1] });
        i >>= 1;
    }
    let mut result = context.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password)
        } else {
            c.update(result)
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(result)
        } else {
            c.update(password)
        }
        result = c.finalize();
    }
    const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = format!("{magic}{}$", String::from_utf8_lossy(salt));
    let mut to64 = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let r = |i: usize| u32::from(result[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64((r(a) << 16) | (r(b) << 8) | r(c), 4);
    }
    to64(r(11), 2);
    out
}

/// Credentials that passed lately, by a digest of the header: a client sends the same
/// header on every request, and bcrypt costs tens of milliseconds per check.
const VERIFIED_CACHE: usize = 256;

/// The users a `basicauth` receiver accepts.
pub struct Users {
    users: Arc<HashMap<String, Hash>>,
    verified: Mutex<HashMap<[u8; 32], String>>,
    /// Checks running at once: bcrypt is slow on purpose, so clients sending wrong
    /// passwords must not take every core (or the blocking pool).
    checks: tokio::sync::Semaphore,
}

/// Password checks at once, per `basicauth` extension.
const CONCURRENT_CHECKS: usize = 2;

impl Users {
    pub fn new(text: &str) -> Result<Users, String> {
        let users = parse(text)?;
        if users.is_empty() {
            return Err("htpasswd lists no users".into());
        }
        Ok(Users {
            users: Arc::new(users),
            verified: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(CONCURRENT_CHECKS),
        })
    }

    /// Checks an `Authorization: Basic …` value; the user name if it passes.
    pub async fn check(&self, header: &str) -> Result<String, Unauthenticated> {
        let key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, header.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| Unauthenticated("digest"))?;
        if let Some(user) = self.verified.lock().ok().and_then(|v| v.get(&key).cloned()) {
            return Ok(user);
        }
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or(Unauthenticated("not HTTP Basic credentials"))?;
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| Unauthenticated("credentials are not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| Unauthenticated("credentials are not UTF-8"))?;
        let (user, password) = decoded.split_once(':').ok_or(Unauthenticated("credentials lack a `:`"))?;
        let (user, password) = (user.to_string(), password.to_string());
        let Ok(_check) = self.checks.try_acquire() else {
            return Err(Unauthenticated("too many password checks at once; retry"));
        };
        let users = self.users.clone();
        let name = user.clone();
        let passed = tokio::task::spawn_blocking(move || match users.get(&name) {
            Some(hash) => hash.verify(&password),
            // An unknown user costs as much as a known one with the same kind of hash,
            // so the time taken does not tell which names exist.
            None => {
                let _ = users.values().next().map(|h| h.verify(&password));
                false
            }
        })
        .await
        .unwrap_or(false);
        if !passed {
            return Err(Unauthenticated("invalid credentials"));
        }
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_CACHE {
                verified.clear();
            }
            verified.insert(key, user.clone());
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_crypt_matches_openssl() {
        // `openssl passwd -apr1 -salt abcdefgh password`, `openssl passwd -1 -salt saltsalt secret`
        assert_eq!(md5_crypt(b"password", b"abcdefgh", "$apr1$"), "$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1");
        assert_eq!(md5_crypt(b"secret", b"saltsalt", "$1$"), "$1$saltsalt$9xy1btjgzLYfb7hivXtC//");
    }

    #[tokio::test]
    async fn each_hash_format_checks_its_password() {
        let bcrypt = bcrypt::hash_with_salt("pw-b", 4, [7u8; 16]).unwrap().format_for_version(bcrypt::Version::TwoY);
        let text = format!(
            "# users\nann:$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1\nbob:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\ncid:{bcrypt}\n\n"
        );
        let users = Users::new(&text).unwrap();
        let basic = |creds: &str| format!("Basic {}", STANDARD.encode(creds));
        assert_eq!(users.check(&basic("ann:password")).await, Ok("ann".into()));
        assert_eq!(users.check(&basic("bob:secret")).await, Ok("bob".into()));
        assert_eq!(users.check(&basic("cid:pw-b")).await, Ok("cid".into()));
        // Cached now, and still right.
        assert_eq!(users.check(&basic("cid:pw-b")).await, Ok("cid".into()));
        assert_eq!(users.check(&basic("cid:wrong")).await, Err(Unauthenticated("invalid credentials")));
        assert_eq!(users.check(&basic("nobody:password")).await, Err(Unauthenticated("invalid credentials")));
        assert_eq!(users.check("Bearer x").await, Err(Unauthenticated("not HTTP Basic credentials")));
        assert_eq!(users.check("Basic !!!").await, Err(Unauthenticated("credentials are not base64")));
    }

    #[test]
    fn unsupported_hashes_name_their_line() {
        assert_eq!(
            parse("a:$6$salt$x").unwrap_err(),
            "line 1: unsupported hash: use bcrypt (htpasswd -B), MD5 (htpasswd -m) or SHA-1 (htpasswd -s)"
        );
        assert!(parse("ok:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\nnocolon").unwrap_err().starts_with("line 2:"));
        assert!(Users::new("# nobody\n").is_err());
        let slow = format!("a:$2y$31${}", "x".repeat(53));
        assert!(parse(&slow).unwrap_err().contains("bcrypt cost 31"), "{slow}");
        assert!(parse("a:$2y$10$short").unwrap_err().contains("60 characters"));
    }
}
