//! ConfigActor: owns the instance's configuration at run time and hands it
//! to the other actors. The local file is read once at start (changes take
//! effect after a restart, as in the original).

use std::sync::Arc;

use actix::prelude::*;

use crate::actors::supervisor::Shutdown;
use crate::config::Config;

pub struct ConfigActor {
    config: Arc<Config>,
}

impl ConfigActor {
    pub fn new(config: Arc<Config>) -> Self {
        ConfigActor { config }
    }
}

impl Actor for ConfigActor {
    type Context = Context<Self>;
}

/// The effective local configuration.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Arc<Config>")]
pub struct GetConfig;

impl Handler<GetConfig> for ConfigActor {
    type Result = MessageResult<GetConfig>;

    fn handle(&mut self, _: GetConfig, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Arc::clone(&self.config))
    }
}

impl Handler<Shutdown> for ConfigActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
