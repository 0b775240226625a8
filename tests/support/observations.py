"""Sample requests shaped like Agent Arena's foraging scene, shared by unit and stack tests."""

#: An observation as Agent Arena's foraging scene sends it.
OBSERVATION = {
    "agent_id": "forager_1",
    "tick": 42,
    "position": [0.0, 0.0, 0.0],
    "rotation": [0.0, 90.0, 0.0],
    "velocity": [0.0, 0.0, 0.0],
    "visible_entities": [{"id": "forager_2", "type": "agent", "position": [10.0, 0.0, 0.0], "distance": 10.0}],
    "nearby_resources": [
        {"name": "berry_1", "type": "berry", "position": [3.0, 0.0, 4.0], "distance": 5.0},
        {"name": "wood_7", "type": "wood", "position": [-12.0, 0.0, 5.0], "distance": 13.0},
    ],
    "nearby_hazards": [
        {"name": "fire_1", "type": "fire", "position": [-6.0, 0.0, 8.0], "distance": 10.0, "damage": 10}
    ],
    "nearby_stations": [],
    "inventory": [{"id": "item_1", "name": "wood", "quantity": 2}],
    "health": 90.0,
    "energy": 75.5,
    "perception_radius": 50.0,
    "exploration": {"exploration_percentage": 12.5, "total_cells": 400, "seen_cells": 50},
    "scenario_name": "foraging",
    "objective": {
        "description": "Collect resources while avoiding hazards",
        "time_limit": 600,
        "success_metrics": {"resources_collected": {"target": 10, "weight": 1.0}},
    },
    "current_progress": {"resources_collected": 1},
    "custom": {"weather": "rain"},
}
