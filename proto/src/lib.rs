//! Sans-IO OTLP wire layer (skeleton; see issue 3).
