"""The ground floor: registries, typed parameters, the training config, errors, atomic writes, devices, number formats."""
