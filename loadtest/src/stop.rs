//! Stopping a run early (Ctrl-C): the run ends its measurement where it is, and reports what it
//! measured.

use tokio::sync::watch;

/// Asks a run to stop.
#[derive(Debug, Clone)]
pub struct StopButton(watch::Sender<bool>);

/// What a run watches to know it should stop.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

/// A button and what it stops.
pub fn stop_button() -> (StopButton, Stop) {
    let (sender, receiver) = watch::channel(false);
    (StopButton(sender), Stop(receiver))
}

impl StopButton {
    /// Stops the run.
    pub fn press(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// A stop that never comes.
    pub fn never() -> Stop {
        let (sender, receiver) = watch::channel(false);
        // The receiver keeps reading `false` once the sender is gone.
        drop(sender);
        Stop(receiver)
    }

    /// Whether the run was asked to stop.
    pub fn is_pressed(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the run is asked to stop; never returns if it never is.
    pub async fn pressed(&mut self) {
        if self.0.wait_for(|pressed| *pressed).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Default for Stop {
    fn default() -> Self {
        Stop::never()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_press_is_seen_and_never_is_never() {
        let (button, mut stop) = stop_button();
        assert!(!stop.is_pressed());
        button.press();
        tokio::time::timeout(Duration::from_secs(1), stop.pressed())
            .await
            .expect("seen");
        assert!(stop.is_pressed());
        let mut never = Stop::never();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), never.pressed())
                .await
                .is_err()
        );
    }
}
