"""Settings, paths, configuration files and process-wide helpers: the bottom layer, which every
other imports."""
