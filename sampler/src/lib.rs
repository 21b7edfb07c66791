//! Sans-IO tail-sampling engine (skeleton; see issue 4).
