//! `[dns.NAME]`: DNS provider accounts; each kind checks its own table (`dns::registry`).

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn dns(&mut self, file: usize, name: &str, table: &DnsTable) -> Option<DnsSettings> {
        let path = KeyPath::root().key("dns").key(name);
        let kind = table.validate(self, file, name, &path)?;
        Some(DnsSettings {
            name: name.to_string(),
            kind,
            location: self.location(file, &path),
        })
    }
}
