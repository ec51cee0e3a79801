//! Keyset page tokens: the last (created_at, id) of a page, bound to the list, its scope and
//! its direction, signed with the instance key kept in the store, so every replica accepts
//! every other replica's tokens and a client cannot forge or transplant one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::AppError;
use crate::store::Micros;

const MAC_LEN: usize = 16;
pub const DEFAULT_LIMIT: u32 = 10;
pub const MAX_LIMIT: u32 = 100;

/// Which list a token belongs to: a name and the scope (organization) it lists.
pub struct ListId<'a> {
    pub list: &'a str,
    pub scope: &'a str,
}

pub struct PageSigner {
    /// Keyed once; cloned per token, which is cheaper than re-keying.
    keyed: Hmac<Sha256>,
}

/// A validated page request: where it starts and how many rows it fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// Only rows strictly after this key in the requested direction.
    pub after: Option<(Micros, String)>,
    /// Newest first.
    pub reverse: bool,
    /// The page size the client asked for.
    pub limit: u32,
}

impl PageQuery {
    pub fn after(&self) -> Option<(Micros, &str)> {
        self.after.as_ref().map(|(created_at, id)| (*created_at, id.as_str()))
    }

    /// One row more than the page: it tells whether a next page exists.
    pub fn fetch(&self) -> usize {
        self.limit as usize + 1
    }
}

/// A page request as the client sent it.
pub struct PageRequest<'a> {
    pub limit: Option<i32>,
    pub token: &'a str,
    pub reverse: bool,
}

impl PageSigner {
    pub fn new(key: &[u8]) -> Result<Self, AppError> {
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .map_err(|_| AppError::new(super::ErrorKind::Internal, "INTERNAL", "the page signing key is unusable"))?;
        Ok(PageSigner { keyed })
    }

    /// Validates a page request.
    pub fn query(&self, id: &ListId<'_>, request: &PageRequest<'_>) -> Result<PageQuery, AppError> {
        let limit = limit(request.limit)?;
        let after = if request.token.is_empty() {
            None
        } else {
            let (created_at, last_id) = self.open(id, request.reverse, request.token)?;
            let created_at = created_at.parse::<Micros>().map_err(|_| invalid_token())?;
            Some((created_at, last_id))
        };
        Ok(PageQuery { after, reverse: request.reverse, limit })
    }

    /// Cuts the extra row off and makes the token for the next page, if there is one. `key`
    /// is a row's (created_at, id).
    pub fn page<T>(
        &self,
        id: &ListId<'_>,
        query: &PageQuery,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> (Micros, &str),
    ) -> (Vec<T>, Option<String>) {
        let limit = query.limit as usize;
        if rows.len() <= limit {
            return (rows, None);
        }
        rows.truncate(limit);
        let token = rows.last().map(|last| {
            let (created_at, last_id) = key(last);
            self.seal(id, query.reverse, &created_at.to_string(), last_id)
        });
        (rows, token)
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        full.get(..MAC_LEN).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// A token for the key `(first, second)` of the last row of a page; neither part may
    /// contain a newline, the first (a number in every list) never does.
    pub(super) fn seal(&self, id: &ListId<'_>, reverse: bool, first: &str, second: &str) -> String {
        let payload = format!("1\n{}\n{}\n{}\n{first}\n{second}", id.list, id.scope, u8::from(reverse));
        let mut bytes = payload.into_bytes();
        let mac = self.mac(&bytes);
        bytes.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The key a token holds, if it is genuine and belongs to this list and direction.
    pub(super) fn open(&self, id: &ListId<'_>, reverse: bool, token: &str) -> Result<(String, String), AppError> {
        let invalid = invalid_token;
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() <= MAC_LEN {
            return Err(invalid());
        }
        let (payload, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        // Constant-time comparison through the MAC type.
        let mut check = self.keyed.clone();
        check.update(payload);
        check.verify_truncated_left(mac).map_err(|_| invalid())?;
        let text = std::str::from_utf8(payload).map_err(|_| invalid())?;
        let fields: Vec<&str> = text.splitn(6, '\n').collect();
        let [version, list, scope, direction, first, second] = fields.as_slice() else {
            return Err(invalid());
        };
        if *version != "1" || *list != id.list || *scope != id.scope || *direction != if reverse { "1" } else { "0" } {
            return Err(invalid());
        }
        Ok(((*first).to_owned(), (*second).to_owned()))
    }
}

/// The page size of a request: 1 to 100, 10 when absent.
pub fn limit(requested: Option<i32>) -> Result<u32, AppError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT as i32).contains(&n) => Ok(n as u32),
        Some(n) => Err(AppError::invalid("limit", format!("limit must be between 1 and {MAX_LIMIT}, not {n}"))),
    }
}

fn invalid_token() -> AppError {
    AppError::invalid("pageToken", "the page token is not valid for this list")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORGS: ListId<'static> = ListId { list: "organizations", scope: "" };

    fn request(token: &str, reverse: bool) -> PageRequest<'_> {
        PageRequest { limit: Some(2), token, reverse }
    }

    #[test]
    fn a_token_round_trips_only_for_its_own_list_and_direction() {
        let signer = PageSigner::new(b"key").unwrap();
        let token = signer.seal(&ORGS, false, "42", "abc");
        let query = signer.query(&ORGS, &request(&token, false)).unwrap();
        assert_eq!(query.after, Some((42, "abc".into())));
        assert_eq!((query.limit, query.fetch()), (2, 3));
        assert!(signer.query(&ORGS, &request(&token, true)).is_err());
        let other = ListId { list: "policies", scope: "org-1" };
        assert!(signer.query(&other, &request(&token, false)).is_err());
        let replica = PageSigner::new(b"other key").unwrap();
        assert!(replica.query(&ORGS, &request(&token, false)).is_err());
    }

    #[test]
    fn forged_and_garbled_tokens_are_invalid() {
        let signer = PageSigner::new(b"key").unwrap();
        let token = signer.seal(&ORGS, false, "42", "abc");
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[10] ^= 1;
        let forged = URL_SAFE_NO_PAD.encode(bytes);
        for bad in [forged.as_str(), "not base64!", "AAAA", ""] {
            let result = signer.query(&ORGS, &request(bad, false));
            if bad.is_empty() {
                assert!(result.unwrap().after.is_none());
            } else {
                let error = result.unwrap_err();
                assert_eq!(error.violations[0].0, "pageToken");
            }
        }
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_rejected() {
        let signer = PageSigner::new(b"key").unwrap();
        for limit in [0, -1, 101] {
            let error =
                signer.query(&ORGS, &PageRequest { limit: Some(limit), token: "", reverse: false }).unwrap_err();
            assert_eq!(error.violations[0].0, "limit");
        }
        let default = signer.query(&ORGS, &PageRequest { limit: None, token: "", reverse: false }).unwrap();
        assert_eq!(default.limit, DEFAULT_LIMIT);
    }
}
