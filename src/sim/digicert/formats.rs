//! Certificate download formats of the glossary: PEM bundles, PKCS#7 and ZIP archives of PEM
//! files. Every certificate is PEM with `\r\n` line endings.

use super::ca::der;
use super::model::Reply;
use super::render::pem_crlf;

/// Render `[leaf, intermediate, root]` (DER) in `format`; `None` for an unknown format.
pub(crate) fn render(format: &str, common_name: &str, chain: &[Vec<u8>; 3]) -> Option<Reply> {
    let [leaf, intermediate, root] = chain;
    let pem_bundle = |parts: &[&Vec<u8>]| Reply::Bytes {
        content_type: "application/x-pem-file",
        bytes: parts
            .iter()
            .map(|der| pem_crlf(der))
            .collect::<String>()
            .into_bytes(),
    };
    let file_stem = common_name.replace("*.", "star_").replace('.', "_");
    let zip = |files: Vec<(String, &Vec<u8>)>| Reply::Bytes {
        content_type: "application/zip",
        bytes: zip_store(
            &files
                .into_iter()
                .map(|(name, der)| (name, pem_crlf(der).into_bytes()))
                .collect::<Vec<_>>(),
        ),
    };
    Some(match format {
        "pem_all" => pem_bundle(&[leaf, intermediate, root]),
        "pem_noroot" => pem_bundle(&[leaf, intermediate]),
        "pem_nointermediate" => pem_bundle(&[leaf, root]),
        "p7b" | "cer" => {
            let pkcs7 = der::pkcs7_certificates(&[root, intermediate, leaf]);
            let text = pem::encode_config(
                &pem::Pem::new("PKCS7", pkcs7),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::CRLF),
            );
            Reply::Bytes {
                content_type: "application/x-pkcs7-certificates",
                bytes: text.into_bytes(),
            }
        }
        "default" | "default_pem" => zip(vec![
            ("TrustedRoot.crt".into(), root),
            ("DigiCertCA.crt".into(), intermediate),
            (format!("{file_stem}.crt"), leaf),
        ]),
        "default_cer" => zip(vec![
            ("TrustedRoot.cer".into(), root),
            ("DigiCertCA.cer".into(), intermediate),
            (format!("{file_stem}.cer"), leaf),
        ]),
        "apache" => zip(vec![
            ("DigiCertCA.crt".into(), intermediate),
            (format!("{file_stem}.crt"), leaf),
        ]),
        _ => return None,
    })
}

/// CRC-32 (IEEE), as ZIP needs it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// A ZIP archive of `files`, stored without compression.
pub(crate) fn zip_store(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    const DOS_DATE_1980_01_01: u16 = 0x0021;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        let name_length = name.len() as u16;
        // Local file header.
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&DOS_DATE_1980_01_01.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_length.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        // Central directory entry.
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&DOS_DATE_1980_01_01.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_length.to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_offset = out.len() as u32;
    let central_size = central.len() as u32;
    out.extend_from_slice(&central);
    let count = files.len() as u16;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn zip_layout() {
        let zip = zip_store(&[("a.txt".into(), b"hello".to_vec())]);
        assert_eq!(&zip[..4], b"PK\x03\x04");
        let end = &zip[zip.len() - 22..];
        assert_eq!(&end[..4], b"PK\x05\x06");
        assert_eq!(u16::from_le_bytes([end[10], end[11]]), 1);
        let central_offset = u32::from_le_bytes([end[16], end[17], end[18], end[19]]) as usize;
        assert_eq!(&zip[central_offset..central_offset + 4], b"PK\x01\x02");
    }
}
