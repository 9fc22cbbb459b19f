# pragma version 0.4.3
# pragma evm-version london
"""
@title cntrust provenance-log anchor
@notice Records, per transparency log (log_id), the latest anchored tree_size and
        root of an RFC 6962/9162 Merkle log. Invariants: an anchor's tree_size is
        strictly larger than the log's previous one (no shrinking, no second root
        for the same size); a root is anchored at most once per log; only
        addresses the owner authorized may anchor. Every anchor emits Anchored;
        the history of a log is the sequence of its Anchored events, and
        anchored_size(log_id, root) answers "at which size was this root
        anchored" from state alone.
"""

event Anchored:
    log_id: indexed(bytes32)
    tree_size: uint256
    root: bytes32
    anchorer: indexed(address)

event AnchorerAdded:
    anchorer: indexed(address)

event AnchorerRemoved:
    anchorer: indexed(address)

event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)

owner: public(address)
is_anchorer: public(HashMap[address, bool])
latest_tree_size: public(HashMap[bytes32, uint256])
latest_root: public(HashMap[bytes32, bytes32])
anchored_size: public(HashMap[bytes32, HashMap[bytes32, uint256]])


@deploy
def __init__():
    self.owner = msg.sender
    self.is_anchorer[msg.sender] = True
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)
    log AnchorerAdded(anchorer=msg.sender)


@external
def anchor(log_id: bytes32, tree_size: uint256, root: bytes32):
    """
    @notice Anchor `root` as the head of log `log_id` at `tree_size`.
    @dev Reverts when the sender is not an authorized anchorer, when tree_size
         does not grow, or when the root was already anchored for this log.
    """
    assert self.is_anchorer[msg.sender], "anchor: not an anchorer"
    assert tree_size > self.latest_tree_size[log_id], "anchor: tree size not increasing"
    assert self.anchored_size[log_id][root] == 0, "anchor: duplicate root"
    self.latest_tree_size[log_id] = tree_size
    self.latest_root[log_id] = root
    self.anchored_size[log_id][root] = tree_size
    log Anchored(log_id=log_id, tree_size=tree_size, root=root, anchorer=msg.sender)


@external
def add_anchorer(anchorer: address):
    assert msg.sender == self.owner, "anchor: not the owner"
    assert anchorer != empty(address), "anchor: zero address"
    self.is_anchorer[anchorer] = True
    log AnchorerAdded(anchorer=anchorer)


@external
def remove_anchorer(anchorer: address):
    assert msg.sender == self.owner, "anchor: not the owner"
    self.is_anchorer[anchorer] = False
    log AnchorerRemoved(anchorer=anchorer)


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "anchor: not the owner"
    assert new_owner != empty(address), "anchor: zero address"
    log OwnershipTransferred(previous_owner=self.owner, new_owner=new_owner)
    self.owner = new_owner
