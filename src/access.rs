//! A route's access policy: which client addresses may call it
//! (`allowFrom`) and which actions it serves (`actions`).
//!
//! The address check runs right after the method check, so refused
//! addresses spend no rate-limit budget. It matches the client resolved
//! through the Gateway's trusted proxies; a request whose client address is
//! unknown (no peer address, or a trusted proxy that named no usable client)
//! is refused whenever a list is set. The action check runs right after the
//! schema check, before anything is read or written.

use crate::client_ip::{ClientKey, IpNet};
use crate::error::{ApiError, Code};
use crate::request::{Action, ACTIONS};

/// A set of action names, one bit per entry of [`ACTIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSet(u16);

impl ActionSet {
    /// All thirteen actions: the default.
    pub const ALL: Self = Self((1 << ACTIONS.len()) - 1);
    pub const NONE: Self = Self(0);

    /// Adds an action by name; `false` when the name is not an action.
    pub fn insert(&mut self, name: &str) -> bool {
        match bit(name) {
            Some(b) => {
                self.0 |= b;
                true
            }
            None => false,
        }
    }

    pub fn contains(self, name: &str) -> bool {
        bit(name).is_some_and(|b| self.0 & b != 0)
    }
}

impl Default for ActionSet {
    fn default() -> Self {
        Self::ALL
    }
}

fn bit(name: &str) -> Option<u16> {
    ACTIONS.iter().position(|a| *a == name).map(|i| 1 << i)
}

/// What a route lets in.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `None`: every address.
    pub allow_from: Option<Vec<IpNet>>,
    pub actions: ActionSet,
}

impl Access {
    /// Whether the resolved client may call the route.
    ///
    /// # Errors
    ///
    /// 403 `forbidden` when an allow-list is set and the client's address is
    /// unknown or in none of its blocks.
    pub fn admit(&self, client: ClientKey) -> Result<(), ApiError> {
        let Some(nets) = &self.allow_from else {
            return Ok(());
        };
        match client {
            ClientKey::Ip(ip) if nets.iter().any(|net| net.contains(ip)) => Ok(()),
            _ => Err(ApiError::new(Code::Forbidden)),
        }
    }

    /// Whether the route serves this action.
    ///
    /// # Errors
    ///
    /// 403 `action_forbidden` naming the action.
    pub fn permit(&self, action: &Action) -> Result<(), ApiError> {
        let name = action.name();
        if self.actions.contains(name) {
            Ok(())
        } else {
            Err(ApiError::new(Code::ActionForbidden)
                .with_message(format!("action {name} is not allowed on this route")))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn ip(s: &str) -> ClientKey {
        ClientKey::Ip(s.parse::<IpAddr>().unwrap())
    }

    fn allowing(list: &[&str]) -> Access {
        Access {
            allow_from: Some(list.iter().map(|s| IpNet::parse(s).unwrap()).collect()),
            actions: ActionSet::ALL,
        }
    }

    #[test]
    fn without_a_list_every_client_is_admitted() {
        let open = Access::default();
        assert!(open.admit(ip("203.0.113.9")).is_ok());
        assert!(open.admit(ClientKey::Unknown).is_ok());
    }

    #[test]
    fn listed_blocks_admit_their_members_only() {
        let a = allowing(&["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]);
        assert!(a.admit(ip("203.0.113.200")).is_ok());
        assert!(a.admit(ip("::ffff:203.0.113.4")).is_ok());
        assert!(a.admit(ip("2001:db8::1")).is_ok());
        assert!(a.admit(ip("198.51.100.7")).is_ok());
        for refused in [
            ip("198.51.100.8"),
            ip("2001:db9::1"),
            ClientKey::Unknown,
            ClientKey::UnknownBehindProxy,
        ] {
            assert_eq!(a.admit(refused).unwrap_err().code, Code::Forbidden);
        }
    }

    #[test]
    fn action_sets_hold_exactly_what_was_inserted() {
        assert!(ACTIONS.iter().all(|a| ActionSet::ALL.contains(a)));
        let mut reads = ActionSet::NONE;
        assert!(reads.insert("get_flow"));
        assert!(reads.insert("list_flows"));
        assert!(!reads.insert("drop_table"));
        assert!(reads.contains("get_flow"));
        assert!(!reads.contains("create_flow"));
        assert!(!reads.contains("drop_table"));
        let access = Access {
            allow_from: None,
            actions: reads,
        };
        assert!(access.permit(&Action::ListFlows).is_ok());
        let refused = access
            .permit(&Action::CancelFlow {
                flow_id: "f".into(),
            })
            .unwrap_err();
        assert_eq!(refused.code, Code::ActionForbidden);
        assert_eq!(
            refused.message,
            "action cancel_flow is not allowed on this route"
        );
    }
}
