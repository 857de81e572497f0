"""Apache Beam pipelines: thin DoFns and composite PTransforms around ``wwm_core``."""
