//! Head lists: the change hashes a checkpoint names only by root and count
//! ([`crate::checkpoint::WindowHead`]). A replica keeps the lists it proposed, validated
//! against its own window, fetched (checked against the root) or restored, until the height
//! that finalizes their window is applied; it asks peers for the ones it lacks (requests and
//! answers are in [`super::antientropy`]).

use std::sync::Arc;

use chorus_protocol::ids::Hash32;

use super::{Certified, Effect, MAX_HEAD_LIST_HASHES, Replica};
use crate::checkpoint::WindowHead;
use crate::window::WindowKey;

impl Replica {
    /// The list of heads `head` commits to for window `key`: none for an empty window, one
    /// known already, or our own window's when its root is the one named (kept, since the
    /// window may still change before the height is applied).
    pub(super) fn head_list(
        &mut self,
        key: WindowKey,
        head: &WindowHead,
    ) -> Option<Arc<Vec<Hash32>>> {
        if head.entries == 0 {
            return head.is_list(&[]).then(|| Arc::new(vec![]));
        }
        if let Some(list) = self.head_lists.get(&(head.window, head.root)) {
            return Some(list.clone());
        }
        let heads = self.windows.get_mut(&key).and_then(|w| {
            w.flush();
            let heads = w.heads();
            head.is_list(&heads).then_some(heads)
        })?;
        self.keep_head_list(head.window, heads)
    }

    /// Remember a head list (sorted, unique) by window id and root, within
    /// [`MAX_HEAD_LIST_HASHES`] in all; the list as kept, or `None` over the bound.
    pub(super) fn keep_head_list(
        &mut self,
        window: Hash32,
        heads: Vec<Hash32>,
    ) -> Option<Arc<Vec<Hash32>>> {
        let root = crate::window::root_of(&heads);
        if let Some(list) = self.head_lists.get(&(window, root)) {
            return Some(list.clone());
        }
        let held: usize = self.head_lists.values().map(|l| l.len()).sum();
        if held.saturating_add(heads.len()) > MAX_HEAD_LIST_HASHES {
            return None;
        }
        let list = Arc::new(heads);
        if let Some(Certified::Root(r)) = self.certified.get(&window)
            && *r == root
        {
            self.certified
                .insert(window, Certified::Heads(list.iter().copied().collect()));
        }
        self.head_lists.insert((window, root), list.clone());
        Some(list)
    }

    /// Ask for the head lists of the queued decided checkpoints not known yet (any peer; a
    /// catching-up replica learns them all at once, not one height at a time).
    pub(super) fn fetch_certified_heads(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let wanted: Vec<(Hash32, Hash32)> = self
            .certified
            .iter()
            .filter_map(|(w, c)| match c {
                Certified::Root(root) => Some((*w, *root)),
                Certified::Heads(_) => None,
            })
            .collect();
        if !wanted.is_empty() {
            self.fetch_heads(wanted, None, now_ms, out);
        }
    }
}
