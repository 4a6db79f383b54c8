"""Operations: the autoscaler, its rules, metric sources and actuators."""
