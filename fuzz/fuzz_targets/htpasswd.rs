//! The htpasswd reader on arbitrary text, then each user checked against an
//! arbitrary password: an error or a yes/no, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (file, password) = text.split_once('\u{0}').unwrap_or((text, "password"));
    if let Ok(users) = ocelot::extensions::htpasswd::parse(file) {
        for hash in users.values() {
            // bcrypt at a high cost is slow by design; skip it here.
            if !matches!(hash, ocelot::extensions::htpasswd::Hash::Bcrypt(_)) {
                let _ = hash.verify(password);
            }
        }
    }
    let _ = ocelot::extensions::htpasswd::md5_crypt(password.as_bytes(), file.as_bytes(), "$apr1$");
});
