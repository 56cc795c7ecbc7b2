"""The live-streaming delivery tree's data plane (seed: live-streaming-delivery-tree).

Four functions, each a :class:`netfate.vnf.runtime.Function` run in an instance's
namespace (descriptors name them ``netfate.vnf.streaming.acquirer:Acquirer`` ...):

- ``acquirer.Acquirer``: the root. Ingests a provider's stream on its assigned
  port (RTP/MPEG-TS over UDP, SRT, RTMP), refuses what is not armed, recognises
  the stream and forwards it to its next hops.
- ``relay.Relay``: a forwarder. Duplicates a stream to a list of next hops.
- ``edge.EdgeStreamer``: a leaf. Serves contents to viewers as RTP (an SDP per
  stream) and HLS, with optional lower renditions.
- ``storage.Storage``: records contents on a volume and serves them as HLS VoD.

They share a data path (path.py: relay core, fan-out, local sinks), supervised
ffmpeg children (ffmpeg.py), typed configuration readers (config.py) and the
``emit`` hook through which they tell the back-end what happened (events.py).
"""
