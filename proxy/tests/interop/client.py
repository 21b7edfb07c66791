"""Sends spans to tailgate with real OpenTelemetry Python clients (used by proxy/tests/interop.rs).

usage: client.py MODE ADDR COUNT PREFIX
  MODE sdk-grpc | sdk-http | grpcio ; ADDR host:port ; spans are named PREFIX-0 .. PREFIX-(COUNT-1)
"""
import sys


def sdk(mode, addr, count, prefix):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if mode == "sdk-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression

        exporter = OTLPSpanExporter(endpoint=f"http://{addr}", insecure=True, compression=Compression.Gzip)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http import Compression

        exporter = OTLPSpanExporter(endpoint=f"http://{addr}/v1/traces", compression=Compression.Gzip)
    provider = TracerProvider(resource=Resource.create({"service.name": f"interop-{mode}"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64))
    tracer = provider.get_tracer("tailgate.interop")
    for i in range(count):
        with tracer.start_as_current_span(f"{prefix}-{i}") as span:
            span.set_attribute("i", i)
    if not provider.force_flush(30_000):
        sys.exit("force_flush timed out")
    provider.shutdown()


def raw_grpcio(addr, count, prefix):
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
    from opentelemetry.proto.trace.v1 import trace_pb2

    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    ss = rs.scope_spans.add()
    ss.scope.name = "grpcio"
    for i in range(count):
        s = ss.spans.add()
        s.trace_id = (i + 1).to_bytes(16, "big")
        s.span_id = (i + 1).to_bytes(8, "big")
        s.name = f"{prefix}-{i}"
    with grpc.insecure_channel(addr) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(req, timeout=30, compression=grpc.Compression.Gzip)
        # An unknown method must come back UNIMPLEMENTED, not hang or crash the server.
        metrics = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        try:
            metrics(b"", timeout=30)
            sys.exit("metrics export unexpectedly succeeded")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                sys.exit(f"metrics export: expected UNIMPLEMENTED, got {e.code()}")


def main():
    mode, addr, count, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if mode == "grpcio":
        raw_grpcio(addr, count, prefix)
    else:
        sdk(mode, addr, count, prefix)
    print("sent", count)


if __name__ == "__main__":
    main()
