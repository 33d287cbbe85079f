//! Upload checks (`guards::upload`) on arbitrary input: type sniffing, the ZIP central directory
//! of Word and Excel files, file names and the download's `Content-Disposition`.
//!
//! Input format: the bytes of an uploaded file, whole. They are sniffed as the upload route does
//! (the first `SNIFF_BYTES`), read as a ZIP whose tail is the whole input, and, as text, each line
//! (and the whole) is taken as a file name. So `corpus/upload_sniff/` holds small real files
//! (PDF, PNG, JPEG, HEIC, DOCX and XLSX skeletons, HTML, SVG) and file names.
//!
//! Besides "never panics", it checks what the functions promise:
//! - the sniffed type follows the magic numbers it documents;
//! - a central directory found lies inside the object and is not empty;
//! - `office_kind` answers Word or Excel only for the entries its documentation names;
//! - a parsed `FileName` holds no path separator, control or invisible formatting character, no
//!   leading `..`, no runs of white space, at most `MAX_NAME_CHARS` characters, an extension
//!   equal to its (lower-cased) last part; and parsing it again gives it back unchanged;
//! - `content_disposition` is a valid header value (printable ASCII: no CR, LF or NUL), its
//!   quoted ASCII fallback cannot be closed early, and its `filename*` decodes to the name.
#![no_main]

use guards::upload::{
    FileName, Kind, MAX_NAME_CHARS, SNIFF_BYTES, Sniffed, central_directory_names,
    content_disposition, find_central_directory, office_kind, sniff,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_sniff(data);
    check_zip(data);
    let text = String::from_utf8_lossy(data);
    for raw in std::iter::once(&*text).chain(text.lines()).take(32) {
        check_name(raw);
        check_disposition(raw);
        if let Some(kind) = Kind::parse(raw) {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        if let Some(kind) = Kind::from_extension(raw) {
            assert!(
                kind.extensions()
                    .iter()
                    .any(|e| Kind::from_extension(&e[1..]) == Some(kind))
            );
        }
    }
});

fn check_sniff(data: &[u8]) {
    let head = &data[..data.len().min(SNIFF_BYTES)];
    let sniffed = sniff(head);
    let _ = sniff(data);
    let magic: [(&[u8], Sniffed); 4] = [
        (b"%PDF-", Sniffed::Pdf),
        (&[0xFF, 0xD8, 0xFF], Sniffed::Jpeg),
        (
            &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
            Sniffed::Png,
        ),
        (b"PK\x03\x04", Sniffed::Zip),
    ];
    for (prefix, kind) in magic {
        if head.starts_with(prefix) {
            assert_eq!(sniffed, kind);
        }
    }
    if sniffed == Sniffed::Heic {
        assert!(head.len() >= 16 && &head[4..8] == b"ftyp");
    }
    assert!(!sniffed.describe().is_empty());
    for kind in Kind::ALL {
        assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        if sniffed.matches(kind) {
            assert!(!matches!(sniffed, Sniffed::Other(_)));
            assert_eq!(kind.is_zip(), sniffed == Sniffed::Zip);
        }
    }
}

fn check_zip(data: &[u8]) {
    let size = data.len() as u64;
    let mut from_input = [0u8; 8];
    for (r, b) in from_input.iter_mut().zip(data) {
        *r = *b;
    }
    for object_size in [size, 0, size / 2, u64::MAX, u64::from_le_bytes(from_input)] {
        if let Some((offset, len)) = find_central_directory(data, object_size) {
            assert!(len > 0, "empty central directory");
            assert!(
                offset
                    .checked_add(len)
                    .is_some_and(|end| end <= object_size),
                "central directory {offset}+{len} past the object's {object_size} bytes"
            );
        }
    }
    // What the upload route then reads: the central directory, and its entries.
    if let Some((offset, len)) = find_central_directory(data, size) {
        let cd = &data[offset as usize..(offset + len) as usize];
        check_office(&central_directory_names(cd));
    }
    let names = central_directory_names(data);
    assert!(
        names.len() <= data.len() / 46,
        "more entries than 46-byte headers"
    );
    check_office(&names);
}

fn check_office(names: &[String]) {
    let has = |n: &str| names.iter().any(|x| x == n);
    let macros = names.iter().any(|n| n.ends_with("vbaProject.bin"));
    match office_kind(names) {
        Some(Kind::Docx) => assert!(
            has("[Content_Types].xml")
                && has("word/document.xml")
                && !has("xl/workbook.xml")
                && !macros
        ),
        Some(Kind::Xlsx) => assert!(
            has("[Content_Types].xml")
                && has("xl/workbook.xml")
                && !has("word/document.xml")
                && !macros
        ),
        Some(other) => panic!("office_kind answered {other:?}"),
        None => {}
    }
}

/// The characters `FileName::parse` drops (its `is_invisible_format`).
fn invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn check_name(raw: &str) {
    let Ok(name) = FileName::parse(raw) else {
        return;
    };
    let shown = name.as_ref();
    assert!(shown.chars().count() <= MAX_NAME_CHARS, "{shown:?}");
    assert!(!shown.contains(['/', '\\']), "{shown:?}");
    assert!(
        !shown.chars().any(|c| c.is_control() || invisible(c)),
        "{shown:?}"
    );
    assert!(!shown.starts_with(".."), "{shown:?}");
    assert_eq!(shown, shown.trim(), "white space at an end");
    assert!(
        shown.chars().all(|c| c == ' ' || !c.is_whitespace()) && !shown.contains("  "),
        "white space not folded: {shown:?}"
    );
    let (stem, ext) = shown.rsplit_once('.').expect("an extension");
    assert!(
        !stem.trim().is_empty() && !ext.is_empty() && !ext.contains(' '),
        "{shown:?}"
    );
    assert_eq!(name.extension(), ext.to_ascii_lowercase());
    assert_eq!(
        FileName::parse(shown),
        Ok(name.clone()),
        "cleaning is not idempotent"
    );
}

fn check_disposition(name: &str) {
    let header = content_disposition(name);
    assert!(
        header.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
        "not a valid header value: {header:?}"
    );
    let rest = header
        .strip_prefix("attachment; filename=\"")
        .expect("starts with the ASCII fallback");
    let (ascii, encoded) = rest
        .split_once("\"; filename*=UTF-8''")
        .expect("the fallback is closed, then the UTF-8 name follows");
    assert!(!ascii.contains(['"', '\\']), "{header:?}");
    assert_eq!(ascii.chars().count(), name.chars().count(), "{header:?}");
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~%".contains(&b)),
        "{header:?}"
    );
    assert_eq!(percent_decode(encoded), name.as_bytes(), "{header:?}");
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("two hex digits");
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
