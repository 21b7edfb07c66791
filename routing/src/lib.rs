//! Sans-IO trace-ID routing (skeleton; see issue 6).
