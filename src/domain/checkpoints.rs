//! Decides signed checkpoints of the log.

use super::DomainError;
use gatehouse_projections::State;
use gatehouse_schemas::{Checkpoint, Event};

/// Record a signed checkpoint (a no-op when one at or after its position exists).
pub(super) fn record(state: &State, c: &Checkpoint) -> Result<Vec<Event>, DomainError> {
    if c.position > state.seq {
        return Err(DomainError::invalid(
            "position",
            "a checkpoint cannot be ahead of the log",
        ));
    }
    if state
        .checkpoints
        .last()
        .is_some_and(|l| l.position >= c.position)
    {
        return Ok(vec![]);
    }
    Ok(vec![Event::CheckpointSigned(c.clone())])
}
