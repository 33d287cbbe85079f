//! The checks an upload goes through before anything is stored, all on untrusted input: the
//! file name ([`FileName`]), the content's real type from its first bytes ([`sniff`]), and, for
//! Word and Excel files, the entries of the ZIP's central directory ([`find_central_directory`],
//! [`central_directory_names`], [`office_kind`]); and the `Content-Disposition` a download is
//! served with ([`content_disposition`]).
//!
//! The caller reads the bytes (the server's upload route streams the head and, for ZIPs, the tail
//! and central directory from the object store); these functions only look at slices, so any
//! slice, however short, long or hostile, gets an answer and never a panic
//! (`fuzz/fuzz_targets/upload_sniff.rs`). `app::ssr::documents` re-exports all of it.

/// The longest file name kept (characters). Longer names are refused, not cut: a cut name could
/// lose its extension or read as another file.
pub const MAX_NAME_CHARS: usize = 200;

// ---------------------------------------------------------------------------------------------
// Kinds of file.

/// The file types the portal can accept. Which of them are allowed is configuration
/// (`storage.allowed_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Pdf,
    Jpeg,
    Png,
    Heic,
    Docx,
    Xlsx,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Pdf,
        Kind::Jpeg,
        Kind::Png,
        Kind::Heic,
        Kind::Docx,
        Kind::Xlsx,
    ];

    /// The name used in configuration and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pdf => "pdf",
            Kind::Jpeg => "jpeg",
            Kind::Png => "png",
            Kind::Heic => "heic",
            Kind::Docx => "docx",
            Kind::Xlsx => "xlsx",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jpg" => Some(Kind::Jpeg),
            "heif" => Some(Kind::Heic),
            other => Kind::ALL.into_iter().find(|k| k.as_str() == other),
        }
    }

    /// The kind a file name's extension claims.
    pub fn from_extension(ext: &str) -> Option<Kind> {
        match ext.to_ascii_lowercase().as_str() {
            "pdf" => Some(Kind::Pdf),
            "jpg" | "jpeg" | "jpe" => Some(Kind::Jpeg),
            "png" => Some(Kind::Png),
            "heic" | "heif" => Some(Kind::Heic),
            "docx" => Some(Kind::Docx),
            "xlsx" => Some(Kind::Xlsx),
            _ => None,
        }
    }

    /// The `Content-Type` the portal serves it with (never the one the browser sent).
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Pdf => "application/pdf",
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Heic => "image/heic",
            Kind::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Kind::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// What people call it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Pdf => "PDF",
            Kind::Jpeg => "JPEG",
            Kind::Png => "PNG",
            Kind::Heic => "HEIC",
            Kind::Docx => "Word (.docx)",
            Kind::Xlsx => "Excel (.xlsx)",
        }
    }

    /// The extensions a file picker should offer.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Kind::Pdf => &[".pdf"],
            Kind::Jpeg => &[".jpg", ".jpeg"],
            Kind::Png => &[".png"],
            Kind::Heic => &[".heic", ".heif"],
            Kind::Docx => &[".docx"],
            Kind::Xlsx => &[".xlsx"],
        }
    }

    /// Word and Excel files are ZIP archives; their entries decide which they are.
    pub fn is_zip(self) -> bool {
        matches!(self, Kind::Docx | Kind::Xlsx)
    }
}

/// What the first bytes of a file say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    Pdf,
    Jpeg,
    Png,
    Heic,
    /// A ZIP archive: a Word or Excel file, or something else; the central directory decides.
    Zip,
    /// Anything else, with a description for the message ("an HTML page").
    Other(&'static str),
}

/// How many leading bytes [`sniff`] wants (fewer is fine at the end of a short file).
pub const SNIFF_BYTES: usize = 512;

/// The content's real type, from its magic numbers. Never from the name or the declared type.
pub fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(b"%PDF-") {
        return Sniffed::Pdf;
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Sniffed::Jpeg;
    }
    if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        return Sniffed::Png;
    }
    if head.starts_with(b"PK\x03\x04") {
        return Sniffed::Zip;
    }
    if head.len() >= 16 && &head[4..8] == b"ftyp" {
        return if is_heic_ftyp(head) {
            Sniffed::Heic
        } else {
            Sniffed::Other("a video or another image format")
        };
    }
    // Markup: skip a byte-order mark and white space, then look at the start, case-insensitively.
    let text = head.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let lower: Vec<u8> = text[start..]
        .iter()
        .take(SNIFF_BYTES)
        .map(u8::to_ascii_lowercase)
        .collect();
    let contains = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if lower.starts_with(b"<svg") || (lower.starts_with(b"<?xml") && contains(b"<svg")) {
        return Sniffed::Other("an SVG image");
    }
    if [
        "<!doctype html",
        "<html",
        "<head",
        "<body",
        "<script",
        "<iframe",
        "<!--",
    ]
    .iter()
    .any(|t| lower.starts_with(t.as_bytes()))
    {
        return Sniffed::Other("an HTML page");
    }
    if lower.starts_with(b"<?xml") {
        return Sniffed::Other("an XML file");
    }
    if head.starts_with(b"GIF8") {
        return Sniffed::Other("a GIF image");
    }
    if head.starts_with(b"MZ") || head.starts_with(b"\x7fELF") {
        return Sniffed::Other("a program");
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Sniffed::Other("an old Office file (.doc or .xls)");
    }
    Sniffed::Other("a file of an unknown type")
}

/// HEIC/HEIF by the ISO-BMFF `ftyp` box: its major brand, or a generic HEIF major brand
/// (`mif1`, `msf1`) with an HEVC-coded compatible brand. AVIF (`avif`) is not HEIC.
fn is_heic_ftyp(head: &[u8]) -> bool {
    const HEIC: [&[u8]; 6] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"];
    let major = &head[8..12];
    if HEIC.contains(&major) {
        return true;
    }
    if major != b"mif1" && major != b"msf1" {
        return false;
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let end = size.min(head.len());
    head.get(16..end).is_some_and(|brands| {
        brands
            .chunks_exact(4)
            .any(|b| HEIC.contains(&b) && b != b"mif1")
    })
}

impl Sniffed {
    /// Whether content of this sniffed type may be stored as `claimed` (the extension's kind).
    pub fn matches(self, claimed: Kind) -> bool {
        matches!(
            (self, claimed),
            (Sniffed::Pdf, Kind::Pdf)
                | (Sniffed::Jpeg, Kind::Jpeg)
                | (Sniffed::Png, Kind::Png)
                | (Sniffed::Heic, Kind::Heic)
                | (Sniffed::Zip, Kind::Docx | Kind::Xlsx)
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Sniffed::Pdf => "a PDF",
            Sniffed::Jpeg => "a JPEG image",
            Sniffed::Png => "a PNG image",
            Sniffed::Heic => "a HEIC image",
            Sniffed::Zip => "a ZIP archive",
            Sniffed::Other(what) => what,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ZIP central directory (Word and Excel files).

/// Where the central directory is, from the end-of-central-directory record found in `tail`
/// (the last bytes of the object; at most 65,557 are needed). `None` when there is no record, or
/// when the archive is ZIP64 (Office writes that only for files far above the upload limit).
pub fn find_central_directory(tail: &[u8], object_size: u64) -> Option<(u64, u64)> {
    const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    if tail.len() < 22 {
        return None;
    }
    let mut i = tail.len() - 22;
    loop {
        if tail[i..i + 4] == EOCD {
            let u16_at = |o: usize| u16::from_le_bytes([tail[i + o], tail[i + o + 1]]);
            let u32_at = |o: usize| {
                u32::from_le_bytes([
                    tail[i + o],
                    tail[i + o + 1],
                    tail[i + o + 2],
                    tail[i + o + 3],
                ])
            };
            let entries = u16_at(10);
            let size = u32_at(12);
            let offset = u32_at(16);
            if entries == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
                return None;
            }
            let (size, offset) = (u64::from(size), u64::from(offset));
            if offset.checked_add(size)? > object_size || size == 0 {
                return None;
            }
            return Some((offset, size));
        }
        if i == 0 {
            return None;
        }
        i -= 1;
    }
}

/// The entry names in a central directory. Stops at the first malformed record.
pub fn central_directory_names(cd: &[u8]) -> Vec<String> {
    const HEADER: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    let mut names = Vec::new();
    let mut i = 0usize;
    while i + 46 <= cd.len() && cd[i..i + 4] == HEADER && names.len() < 20_000 {
        let u16_at = |o: usize| u16::from_le_bytes([cd[i + o], cd[i + o + 1]]) as usize;
        let (name_len, extra_len, comment_len) = (u16_at(28), u16_at(30), u16_at(32));
        let Some(name) = cd.get(i + 46..i + 46 + name_len) else {
            break;
        };
        names.push(String::from_utf8_lossy(name).into_owned());
        i += 46 + name_len + extra_len + comment_len;
    }
    names
}

/// Which Office document a ZIP's entries make it: Word needs `word/document.xml`, Excel
/// `xl/workbook.xml`, both `[Content_Types].xml`. Files with macros (`vbaProject.bin`) are
/// neither: they are `.docm`/`.xlsm` renamed.
pub fn office_kind(names: &[String]) -> Option<Kind> {
    let has = |n: &str| names.iter().any(|x| x == n);
    if !has("[Content_Types].xml") || names.iter().any(|n| n.ends_with("vbaProject.bin")) {
        return None;
    }
    match (has("word/document.xml"), has("xl/workbook.xml")) {
        (true, false) => Some(Kind::Docx),
        (false, true) => Some(Kind::Xlsx),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// File names.

/// A file name, checked and cleaned for display. It is never used as a path or a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName {
    display: String,
    extension: String,
}

impl FileName {
    /// Refuses names with path parts (`/`, `\`, `..`), control characters, no extension, or more
    /// than [`MAX_NAME_CHARS`] characters; then drops invisible formatting characters (such as
    /// right-to-left overrides that make `cod.exe` read as `exe.doc`) and folds runs of white
    /// space.
    pub fn parse(raw: &str) -> Result<FileName, &'static str> {
        if raw.chars().count() > MAX_NAME_CHARS {
            return Err("its name is longer than 200 characters");
        }
        if raw.chars().any(char::is_control) {
            return Err("its name contains control characters");
        }
        if raw.contains('/') || raw.contains('\\') {
            return Err("its name contains a folder path");
        }
        let cleaned: String = raw
            .chars()
            .filter(|c| !is_invisible_format(*c))
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if cleaned.is_empty() {
            return Err("it has no name");
        }
        if cleaned == "." || cleaned == ".." || cleaned.starts_with("..") {
            return Err("its name contains a folder path");
        }
        let Some((stem, ext)) = cleaned.rsplit_once('.') else {
            return Err("its name has no extension (such as .pdf)");
        };
        if stem.trim().is_empty() || ext.is_empty() || ext.contains(' ') {
            return Err("its name has no extension (such as .pdf)");
        }
        Ok(FileName {
            extension: ext.to_ascii_lowercase(),
            display: cleaned,
        })
    }

    pub fn extension(&self) -> &str {
        &self.extension
    }
}

impl AsRef<str> for FileName {
    fn as_ref(&self) -> &str {
        &self.display
    }
}

fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `Content-Disposition: attachment` for a stored display name (RFC 6266): an ASCII fallback
/// and the UTF-8 name percent-encoded.
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(b) {
            encoded.push(*b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_recognised_by_its_first_bytes() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Sniffed::Pdf);
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), Sniffed::Jpeg);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Sniffed::Png);
        assert_eq!(sniff(b"PK\x03\x04\x14\0"), Sniffed::Zip);
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(sniff(heic), Sniffed::Heic);
        let generic = b"\0\0\0\x1cftypmif1\0\0\0\0mif1heicmiaf";
        assert_eq!(sniff(generic), Sniffed::Heic);
        let avif = b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf";
        assert!(matches!(sniff(avif), Sniffed::Other(_)));
        assert_eq!(
            sniff(b"  <!DOCTYPE html><html>"),
            Sniffed::Other("an HTML page")
        );
        assert_eq!(sniff(b"\xEF\xBB\xBF<html>"), Sniffed::Other("an HTML page"));
        assert_eq!(sniff(b"<svg xmlns=...>"), Sniffed::Other("an SVG image"));
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?>\n<svg>"),
            Sniffed::Other("an SVG image")
        );
        assert!(matches!(sniff(b"hello"), Sniffed::Other(_)));
        assert!(Sniffed::Zip.matches(Kind::Docx) && !Sniffed::Png.matches(Kind::Pdf));
    }

    #[test]
    fn file_names_are_refused_or_cleaned() {
        let ok = FileName::parse("  My  scan\u{202E}.PDF ").unwrap();
        assert_eq!(ok.as_ref(), "My scan.PDF");
        assert_eq!(ok.extension(), "pdf");
        for bad in [
            "../../etc/passwd.pdf",
            "..\\boot.ini.pdf",
            "a/b.pdf",
            "bad\nname.pdf",
            "nul\0.pdf",
            "noextension",
            ".pdf",
            "..",
            "",
            "   ",
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(FileName::parse(&format!("{}.pdf", "a".repeat(200))).is_err());
        assert!(FileName::parse(&format!("{}.pdf", "a".repeat(190))).is_ok());
    }

    #[test]
    fn downloads_name_the_file_safely() {
        assert_eq!(
            content_disposition("Zoë \"report\".pdf"),
            "attachment; filename=\"Zo_ _report_.pdf\"; filename*=UTF-8''Zo%C3%AB%20%22report%22.pdf"
        );
    }

    fn zip_with(names: &[&str]) -> Vec<u8> {
        // Local headers are not read; a central directory and its end record are enough.
        let mut out = b"PK\x03\x04".to_vec();
        out.extend_from_slice(&[0; 26]);
        let cd_offset = out.len();
        for n in names {
            out.extend_from_slice(b"PK\x01\x02");
            out.extend_from_slice(&[0; 24]);
            out.extend_from_slice(&(n.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0; 16]);
            out.extend_from_slice(n.as_bytes());
        }
        let cd_size = out.len() - cd_offset;
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(cd_size as u32).to_le_bytes());
        out.extend_from_slice(&(cd_offset as u32).to_le_bytes());
        out.extend_from_slice(&[0; 2]);
        out
    }

    fn kind_of(zip: &[u8]) -> Option<Kind> {
        let (off, size) = find_central_directory(zip, zip.len() as u64)?;
        office_kind(&central_directory_names(
            &zip[off as usize..(off + size) as usize],
        ))
    }

    #[test]
    fn office_files_are_told_apart_by_their_entries() {
        let docx = zip_with(&["[Content_Types].xml", "_rels/.rels", "word/document.xml"]);
        let xlsx = zip_with(&[
            "[Content_Types].xml",
            "xl/workbook.xml",
            "xl/worksheets/sheet1.xml",
        ]);
        let macro_docx = zip_with(&[
            "[Content_Types].xml",
            "word/document.xml",
            "word/vbaProject.bin",
        ]);
        let plain = zip_with(&["notes.txt"]);
        assert_eq!(kind_of(&docx), Some(Kind::Docx));
        assert_eq!(kind_of(&xlsx), Some(Kind::Xlsx));
        assert_eq!(kind_of(&macro_docx), None);
        assert_eq!(kind_of(&plain), None);
        assert_eq!(
            find_central_directory(b"not a zip at all, really not", 28),
            None
        );
    }
}
