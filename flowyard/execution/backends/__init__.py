"""execution/backends"""
