"""voxbus configuration: defaults.toml → file → environment, validated into frozen dataclasses."""
from config.loader import ConfigError, load_config
from config.schema import (AsrConfig, BusConfig, CaptureConfig, Config, CoresConfig, GatewayConfig,
                           RunConfig, SourceConfig, VadConfig)

__all__ = ["AsrConfig", "BusConfig", "CaptureConfig", "Config", "ConfigError", "CoresConfig",
           "GatewayConfig", "RunConfig", "SourceConfig", "VadConfig", "load_config"]
