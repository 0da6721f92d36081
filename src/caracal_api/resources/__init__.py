"""Resources: upstream APIs agents reach through the gateway."""
