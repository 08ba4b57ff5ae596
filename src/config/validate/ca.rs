//! `[ca.NAME]`: CA accounts and references to them.

use super::*;

impl<'a> Validator<'a> {
    pub(super) fn ca(&mut self, file: usize, name: &str, table: &CaTable) -> Option<CaSettings> {
        let path = KeyPath::root().key("ca").key(name);
        let budget = table.max_orders_per_run().and_then(|n| match u32::try_from(n) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                self.error_with_hint(
                    file,
                    &path.key("max_orders_per_run"),
                    Anchor::Value,
                    format!("`max_orders_per_run` must be 1 or more, not {n}"),
                    Some(
                        "leave it out for the CA's documented limit; orders beyond it wait for the next run"
                            .to_string(),
                    ),
                );
                None
            }
        });
        let kind = table.validate(self, file, name, &path)?;
        Some(CaSettings {
            name: name.to_string(),
            kind,
            inventory: table.inventory().unwrap_or_default(),
            max_orders_per_run: budget,
            location: self.location(file, &path),
        })
    }

    /// A URL credentials are sent to, checked by the one rule every such field shares
    /// (`ServiceUrl`); reported at `path` when it breaks it.
    pub(crate) fn service_url(
        &mut self,
        file: usize,
        path: &KeyPath,
        field: &str,
        url: &ServiceUrl,
    ) -> Option<String> {
        match url.checked(field) {
            Ok(url) => Some(url),
            Err(message) => {
                self.error_with_hint(
                    file,
                    path,
                    Anchor::Value,
                    message,
                    Some(scalar::SERVICE_URL_HINT.to_string()),
                );
                None
            }
        }
    }

    /// Whether `name` is a CA; reports an undefined one at `path`.
    pub(super) fn check_ca(&mut self, file: usize, path: &KeyPath, name: &str) -> bool {
        if !self.check_references || name == IMPLICIT_CA || self.declared_cas.contains(name) {
            return true;
        }
        let mut defined: Vec<&str> = self.declared_cas.iter().map(String::as_str).collect();
        if !defined.contains(&IMPLICIT_CA) {
            defined.insert(0, IMPLICIT_CA);
        }
        let near = nearest(name, defined.iter().copied());
        let hint = match near {
            Some(near) => format!("did you mean `{near}`? defined CAs: {}", list(&defined)),
            None => format!(
                "defined CAs: {} (`local` is the built-in CA)",
                list(&defined)
            ),
        };
        self.error_with_hint(
            file,
            path,
            Anchor::Value,
            format!("undefined CA `{}`", shown(name)),
            Some(hint),
        );
        false
    }
}
